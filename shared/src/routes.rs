//! The route table: every endpoint with its method, path and the Lambda function that serves
//! it. The router, the dev server, the functions and the template/OpenAPI checks all read
//! this one table. A new route is a new [`Endpoint`] variant (plus its handler arm in
//! `handlers::router`).

/// The Lambda functions (binary names under `functions/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Signup,
    Login,
    Logout,
    Update,
    Refresh,
    Verify,
    Recover,
}

impl Function {
    /// Every function.
    pub const ALL: [Self; 7] = [
        Self::Signup,
        Self::Login,
        Self::Logout,
        Self::Update,
        Self::Refresh,
        Self::Verify,
        Self::Recover,
    ];

    /// The binary's name, as in `template.yaml`'s `BuildProperties: Binary`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::Update => "update",
            Self::Refresh => "refresh",
            Self::Verify => "verify",
            Self::Recover => "recover",
        }
    }

    /// The function with this binary name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
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
    VerifyPhoneStart,
    VerifyPhoneConfirm,
    RecoverStart,
    RecoverConfirm,
}

impl Endpoint {
    /// Every endpoint, in the order the README lists them.
    pub const ALL: [Self; 10] = [
        Self::Signup,
        Self::Login,
        Self::Logout,
        Self::GetUser,
        Self::PutUser,
        Self::Refresh,
        Self::VerifyPhoneStart,
        Self::VerifyPhoneConfirm,
        Self::RecoverStart,
        Self::RecoverConfirm,
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
            Self::VerifyPhoneStart => ("POST", "/verify/phone/start", Function::Verify),
            Self::VerifyPhoneConfirm => ("POST", "/verify/phone/confirm", Function::Verify),
            Self::RecoverStart => ("POST", "/recover/start", Function::Recover),
            Self::RecoverConfirm => ("POST", "/recover/confirm", Function::Recover),
        }
    }

    /// A short name for log lines (`route` in the request span).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Signup => "signup",
            Self::Login => "login",
            Self::Logout => "logout",
            Self::GetUser | Self::PutUser => "user",
            Self::Refresh => "refresh",
            Self::VerifyPhoneStart => "verify_phone_start",
            Self::VerifyPhoneConfirm => "verify_phone_confirm",
            Self::RecoverStart => "recover_start",
            Self::RecoverConfirm => "recover_confirm",
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
        let on_path = Self::ALL.into_iter().filter(|e| e.path() == path);
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
            Endpoint::find("DELETE", "/user"),
            Err(Miss::MethodNotAllowed(vec!["GET", "PUT"]))
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
            vec![Endpoint::GetUser, Endpoint::PutUser]
        );
    }
}
