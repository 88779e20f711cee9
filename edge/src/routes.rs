//! The route table: every endpoint with its method, path and the Lambda function that serves
//! it. The router, the dev server, the functions and the template/OpenAPI checks all read
//! this one table. A new route is a new [`Endpoint`] variant (plus its handler arm in
//! `handlers::router`). A path segment written `{id}` matches any one non-empty segment, as
//! in API Gateway's route keys; the handler reads it back with [`Endpoint::param`].

/// The Lambda functions (binary names under `functions/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Signup,
    Login,
    Logout,
    Update,
    Refresh,
    /// Operator routes, IAM-signed (`AWS_IAM` authorizer in API Gateway).
    Admin,
    Verify,
    Recover,
    /// The issuer's public keys and discovery document.
    Keys,
    /// An example of another service: behind API Gateway's JWT authorizer, it trusts the
    /// claims the authorizer verified against our JWKS and holds no secret and no database.
    Whoami,
    /// Second factors: TOTP enrolment, recovery codes, step-up.
    Mfa,
    /// Passkeys (WebAuthn): the one function whose binary links webauthn-rs.
    Passkeys,
    /// Sign-in with identity providers, and linking them: the one function that fetches
    /// providers' keys.
    Federation,
}

impl Function {
    /// Every function.
    pub const ALL: [Self; 13] = [
        Self::Signup,
        Self::Login,
        Self::Logout,
        Self::Update,
        Self::Refresh,
        Self::Admin,
        Self::Verify,
        Self::Recover,
        Self::Keys,
        Self::Whoami,
        Self::Mfa,
        Self::Passkeys,
        Self::Federation,
    ];

    /// The binary's name, as in `template.yaml`'s `BuildProperties: Binary`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Update => "update",
            Self::Refresh => "refresh",
            Self::Admin => "admin",
            Self::Verify => "verify",
            Self::Recover => "recover",
            Self::Keys => "keys",
            Self::Whoami => "whoami",
            Self::Mfa => "mfa",
            Self::Passkeys => "passkeys",
            Self::Federation => "federation",
        }
    }

    /// The function with this binary name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// False for a function that needs neither the secret nor the database (its cold start
    /// reads neither).
    pub const fn needs_state(self) -> bool {
        !matches!(self, Self::Whoami)
    }

    /// The endpoints this function serves.
    pub fn endpoints(self) -> impl Iterator<Item = Endpoint> {
        Endpoint::ALL
            .into_iter()
            .filter(move |e| e.function() == self)
    }
}

/// Every endpoint the API serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Signup,
    Login,
    Logout,
    GetUser,
    PutUser,
    Refresh,
    DeleteUser,
    AdminFindUser,
    AdminGetUser,
    AdminDisableUser,
    AdminEnableUser,
    AdminLogoutUser,
    AdminDeleteUser,
    VerifyPhoneStart,
    VerifyPhoneConfirm,
    VerifyEmailStart,
    VerifyEmailConfirm,
    VerifyEmailLink,
    RecoverStart,
    RecoverConfirm,
    Jwks,
    OpenidConfiguration,
    ExampleWhoami,
    LoginMfa,
    MfaFactors,
    TotpStart,
    TotpConfirm,
    MfaRemove,
    RecoveryCodes,
    StepUp,
    AdminResetMfa,
    ExampleWhoamiAal2,
    PasskeyRegisterStart,
    PasskeyRegisterFinish,
    PasskeyLoginStart,
    PasskeyLoginFinish,
    PasskeyStepUpStart,
    PasskeyStepUpFinish,
    PasskeyList,
    PasskeyRename,
    PasskeyRemove,
    AdminSetAppMetadata,
    ExampleWhoamiEditor,
    FederationToken,
    IdentityLink,
    IdentityUnlink,
    FederationAuthorize,
    FederationCallback,
    FederationCallbackForm,
    FederationExchange,
}

/// Who checks a request before the function sees it (API Gateway, per the template).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    /// Nothing: the handler checks credentials itself (JWT plus session token).
    None,
    /// A SigV4 signature by an IAM principal (`AWS_IAM` authorizer).
    Iam,
    /// A JWT from this issuer, verified by API Gateway's JWT authorizer against our JWKS.
    Jwt,
}

impl Endpoint {
    /// Every endpoint, in the order the README lists them.
    pub const ALL: [Self; 50] = [
        Self::Signup,
        Self::Login,
        Self::Logout,
        Self::GetUser,
        Self::PutUser,
        Self::Refresh,
        Self::DeleteUser,
        Self::AdminFindUser,
        Self::AdminGetUser,
        Self::AdminDisableUser,
        Self::AdminEnableUser,
        Self::AdminLogoutUser,
        Self::AdminDeleteUser,
        Self::VerifyPhoneStart,
        Self::VerifyPhoneConfirm,
        Self::VerifyEmailStart,
        Self::VerifyEmailConfirm,
        Self::VerifyEmailLink,
        Self::RecoverStart,
        Self::RecoverConfirm,
        Self::Jwks,
        Self::OpenidConfiguration,
        Self::ExampleWhoami,
        Self::LoginMfa,
        Self::MfaFactors,
        Self::TotpStart,
        Self::TotpConfirm,
        Self::MfaRemove,
        Self::RecoveryCodes,
        Self::StepUp,
        Self::AdminResetMfa,
        Self::ExampleWhoamiAal2,
        Self::PasskeyRegisterStart,
        Self::PasskeyRegisterFinish,
        Self::PasskeyLoginStart,
        Self::PasskeyLoginFinish,
        Self::PasskeyStepUpStart,
        Self::PasskeyStepUpFinish,
        Self::PasskeyList,
        Self::PasskeyRename,
        Self::PasskeyRemove,
        Self::AdminSetAppMetadata,
        Self::ExampleWhoamiEditor,
        Self::FederationToken,
        Self::IdentityLink,
        Self::IdentityUnlink,
        Self::FederationAuthorize,
        Self::FederationCallback,
        Self::FederationCallbackForm,
        Self::FederationExchange,
    ];

    /// (method, path, function) of each endpoint: the table itself.
    const fn row(self) -> (&'static str, &'static str, Function) {
        match self {
            Self::Signup => ("POST", "/signup", Function::Signup),
            Self::Login => ("POST", "/login", Function::Login),
            Self::Logout => ("POST", "/logout", Function::Logout),
            Self::GetUser => ("GET", "/user", Function::Update),
            Self::PutUser => ("PUT", "/user", Function::Update),
            Self::Refresh => ("POST", "/token/refresh", Function::Refresh),
            Self::DeleteUser => ("DELETE", "/user", Function::Update),
            Self::AdminFindUser => ("GET", "/admin/users", Function::Admin),
            Self::AdminGetUser => ("GET", "/admin/users/{id}", Function::Admin),
            Self::AdminDisableUser => ("POST", "/admin/users/{id}/disable", Function::Admin),
            Self::AdminEnableUser => ("POST", "/admin/users/{id}/enable", Function::Admin),
            Self::AdminLogoutUser => ("POST", "/admin/users/{id}/logout", Function::Admin),
            Self::AdminDeleteUser => ("DELETE", "/admin/users/{id}", Function::Admin),
            Self::VerifyPhoneStart => ("POST", "/verify/phone/start", Function::Verify),
            Self::VerifyPhoneConfirm => ("POST", "/verify/phone/confirm", Function::Verify),
            Self::VerifyEmailStart => ("POST", "/verify/email/start", Function::Verify),
            Self::VerifyEmailConfirm => ("POST", "/verify/email/confirm", Function::Verify),
            Self::VerifyEmailLink => ("GET", "/verify/email/link", Function::Verify),
            Self::RecoverStart => ("POST", "/recover/start", Function::Recover),
            Self::RecoverConfirm => ("POST", "/recover/confirm", Function::Recover),
            Self::Jwks => ("GET", domain::auth::jwks::JWKS_PATH, Function::Keys),
            Self::OpenidConfiguration => (
                "GET",
                domain::auth::jwks::OPENID_CONFIGURATION_PATH,
                Function::Keys,
            ),
            Self::ExampleWhoami => ("GET", "/example/whoami", Function::Whoami),
            Self::LoginMfa => ("POST", "/login/mfa", Function::Login),
            Self::MfaFactors => ("GET", "/mfa", Function::Mfa),
            Self::TotpStart => ("POST", "/mfa/totp", Function::Mfa),
            Self::TotpConfirm => ("POST", "/mfa/totp/confirm", Function::Mfa),
            Self::MfaRemove => ("DELETE", "/mfa/factors/{id}", Function::Mfa),
            Self::RecoveryCodes => ("POST", "/mfa/recovery-codes", Function::Mfa),
            Self::StepUp => ("POST", "/session/step-up", Function::Mfa),
            Self::AdminResetMfa => ("POST", "/admin/users/{id}/mfa/reset", Function::Admin),
            Self::ExampleWhoamiAal2 => ("GET", "/example/whoami/aal2", Function::Whoami),
            Self::PasskeyRegisterStart => ("POST", "/passkeys/register/start", Function::Passkeys),
            Self::PasskeyRegisterFinish => {
                ("POST", "/passkeys/register/finish", Function::Passkeys)
            }
            Self::PasskeyLoginStart => ("POST", "/passkeys/login/start", Function::Passkeys),
            Self::PasskeyLoginFinish => ("POST", "/passkeys/login/finish", Function::Passkeys),
            Self::PasskeyStepUpStart => ("POST", "/passkeys/step-up/start", Function::Passkeys),
            Self::PasskeyStepUpFinish => ("POST", "/passkeys/step-up/finish", Function::Passkeys),
            Self::PasskeyList => ("GET", "/passkeys", Function::Passkeys),
            Self::PasskeyRename => ("PATCH", "/passkeys/{id}", Function::Passkeys),
            Self::PasskeyRemove => ("DELETE", "/passkeys/{id}", Function::Passkeys),
            Self::AdminSetAppMetadata => ("PUT", "/admin/users/{id}/app-metadata", Function::Admin),
            Self::ExampleWhoamiEditor => ("GET", "/example/whoami/editor", Function::Whoami),
            Self::FederationToken => ("POST", "/federation/{provider}/token", Function::Federation),
            Self::IdentityLink => ("POST", "/user/identities", Function::Federation),
            Self::IdentityUnlink => (
                "DELETE",
                "/user/identities/{provider}",
                Function::Federation,
            ),
            Self::FederationAuthorize => (
                "GET",
                "/federation/{provider}/authorize",
                Function::Federation,
            ),
            Self::FederationCallback => (
                "GET",
                "/federation/{provider}/callback",
                Function::Federation,
            ),
            Self::FederationCallbackForm => (
                "POST",
                "/federation/{provider}/callback",
                Function::Federation,
            ),
            Self::FederationExchange => ("POST", "/federation/exchange", Function::Federation),
        }
    }

    /// The scopes API Gateway's JWT authorizer requires of a [`Authorization::Jwt`] route's
    /// token (`AuthorizationScopes`; one of them must be in its `scope` claim): the example of
    /// a route an app gates on a second factor with no Lambda authorizer.
    pub const fn scopes(self) -> &'static [&'static str] {
        match self {
            Self::ExampleWhoamiAal2 => &["aal2"],
            Self::ExampleWhoamiEditor => &["role:editor"],
            _ => &[],
        }
    }

    /// Who checks requests before the handler.
    pub const fn authorization(self) -> Authorization {
        match self {
            Self::AdminFindUser
            | Self::AdminGetUser
            | Self::AdminDisableUser
            | Self::AdminEnableUser
            | Self::AdminLogoutUser
            | Self::AdminDeleteUser
            | Self::AdminResetMfa
            | Self::AdminSetAppMetadata => Authorization::Iam,
            Self::ExampleWhoami | Self::ExampleWhoamiAal2 | Self::ExampleWhoamiEditor => {
                Authorization::Jwt
            }
            _ => Authorization::None,
        }
    }

    /// A short name for log lines (`route` in the request span).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::GetUser | Self::PutUser | Self::DeleteUser => "user",
            Self::AdminFindUser
            | Self::AdminGetUser
            | Self::AdminDisableUser
            | Self::AdminEnableUser
            | Self::AdminLogoutUser
            | Self::AdminDeleteUser
            | Self::AdminResetMfa
            | Self::AdminSetAppMetadata => "admin",
            Self::Refresh => "refresh",
            Self::VerifyPhoneStart => "verify_phone_start",
            Self::VerifyPhoneConfirm => "verify_phone_confirm",
            Self::VerifyEmailStart => "verify_email_start",
            Self::VerifyEmailConfirm => "verify_email_confirm",
            Self::VerifyEmailLink => "verify_email_link",
            Self::RecoverStart => "recover_start",
            Self::RecoverConfirm => "recover_confirm",
            Self::Jwks => "jwks",
            Self::OpenidConfiguration => "openid_configuration",
            Self::ExampleWhoami | Self::ExampleWhoamiAal2 | Self::ExampleWhoamiEditor => {
                "example_whoami"
            }
            Self::LoginMfa => "login_mfa",
            Self::MfaFactors | Self::TotpStart | Self::TotpConfirm | Self::MfaRemove => "mfa",
            Self::RecoveryCodes => "recovery_codes",
            Self::StepUp => "step_up",
            Self::PasskeyLoginStart | Self::PasskeyLoginFinish => "passkey_login",
            Self::PasskeyRegisterStart
            | Self::PasskeyRegisterFinish
            | Self::PasskeyStepUpStart
            | Self::PasskeyStepUpFinish
            | Self::PasskeyList
            | Self::PasskeyRename
            | Self::PasskeyRemove => "passkeys",
            Self::FederationToken => "federation_token",
            Self::IdentityLink | Self::IdentityUnlink => "identities",
            Self::FederationAuthorize
            | Self::FederationCallback
            | Self::FederationCallbackForm
            | Self::FederationExchange => "federation_browser",
        }
    }

    /// The HTTP method.
    pub const fn method(self) -> &'static str {
        self.row().0
    }

    /// The path.
    pub const fn path(self) -> &'static str {
        self.row().1
    }

    /// The function that serves it.
    pub const fn function(self) -> Function {
        self.row().2
    }

    /// Matches a request as API Gateway does: a trailing slash is ignored; a known path with
    /// another method gives the methods it has (for 405 and `Allow`).
    pub fn find(method: &str, path: &str) -> Result<Self, Miss> {
        let path = match path.trim_end_matches('/') {
            "" => "/",
            p => p,
        };
        let on_path = Self::ALL.into_iter().filter(|e| matches(e.path(), path));
        let mut allow = Vec::new();
        for e in on_path {
            if e.method() == method {
                return Ok(e);
            }
            allow.push(e.method());
        }
        Err(if allow.is_empty() {
            Miss::NotFound
        } else {
            Miss::MethodNotAllowed(allow)
        })
    }

    /// The segment of `path` that stands where this endpoint's pattern has `{name}`.
    pub fn param<'p>(self, name: &str, path: &'p str) -> Option<&'p str> {
        let at = self.path().split('/').position(|seg| {
            seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) == Some(name)
        })?;
        let path = path.trim_end_matches('/');
        matches(self.path(), path).then(|| path.split('/').nth(at))?
    }
}

/// True when `path` fits `pattern` segment for segment, a `{...}` segment matching any
/// non-empty one.
fn matches(pattern: &str, path: &str) -> bool {
    let (mut p, mut q) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some(want), Some(got)) => {
                let wild = want.starts_with('{') && want.ends_with('}');
                if !(if wild { !got.is_empty() } else { want == got }) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// Why no endpoint matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    /// The path exists with these methods.
    MethodNotAllowed(Vec<&'static str>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_found_by_its_own_method_and_path() {
        for e in Endpoint::ALL {
            assert_eq!(Endpoint::find(e.method(), e.path()), Ok(e));
            assert_eq!(Endpoint::find(e.method(), &format!("{}/", e.path())), Ok(e));
        }
        assert_eq!(Endpoint::find("GET", "/nope"), Err(Miss::NotFound));
        assert_eq!(
            Endpoint::find("PATCH", "/user"),
            Err(Miss::MethodNotAllowed(vec!["GET", "PUT", "DELETE"]))
        );
    }

    #[test]
    fn functions_are_named_as_their_binaries_and_serve_their_endpoints() {
        for f in Function::ALL {
            assert_eq!(Function::from_name(f.name()), Some(f));
            assert!(f.endpoints().count() >= 1, "{f:?}");
        }
        assert_eq!(
            Function::Update.endpoints().collect::<Vec<_>>(),
            vec![Endpoint::GetUser, Endpoint::PutUser, Endpoint::DeleteUser]
        );
    }

    #[test]
    fn an_id_segment_matches_one_non_empty_segment_and_is_read_back() {
        let id = "0123456789abcdef01234567";
        let path = format!("/admin/users/{id}/disable");
        assert_eq!(
            Endpoint::find("POST", &path),
            Ok(Endpoint::AdminDisableUser)
        );
        assert_eq!(Endpoint::AdminDisableUser.param("id", &path), Some(id));
        assert_eq!(
            Endpoint::find("GET", &format!("/admin/users/{id}/")),
            Ok(Endpoint::AdminGetUser)
        );
        assert_eq!(
            Endpoint::find("GET", "/admin/users"),
            Ok(Endpoint::AdminFindUser)
        );
        for missing in [
            "/admin/users//disable",
            "/admin/users/x/y/disable",
            "/admin/users/x/nope",
        ] {
            assert_eq!(
                Endpoint::find("POST", missing),
                Err(Miss::NotFound),
                "{missing}"
            );
        }
        assert_eq!(
            Endpoint::find("PUT", &format!("/admin/users/{id}")),
            Err(Miss::MethodNotAllowed(vec!["GET", "DELETE"]))
        );
        assert_eq!(Endpoint::AdminGetUser.param("id", "/admin/users"), None);
    }
}
