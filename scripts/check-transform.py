"""Runs the SAM transform CloudFormation runs at deploy time, for the default parameters and
with every optional part on, then lints what comes out. `sam validate --lint` passed a
template whose transform failed (an `AWS_IAM` route on an API without EnableIamAuthorizer), so
this check goes through the transform itself. Usage: python check-transform.py template.yaml OUTDIR
"""

import json
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

CASES = {
    "defaults": {},
    "all-on": {
        "JwtAuthorizerExample": "true",
        "JwtIssuer": "https://auth.example.com",
        "HookPreSignupFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:pre-signup",
        "HookPreTokenFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:pre-token:live",
        "HookPostConfirmationUrl": "https://hooks.example.com/confirmed",
        "HookCustomMessageFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:texts",
        "EventsBus": "default",
    },
}


# Which functions may invoke which hook function: exactly those whose routes run the hook.
HOOK_INVOKERS = {
    "HookPreSignupFunctionArn": {"SignupFunction"},
    "HookPreTokenFunctionArn": {"LoginFunction", "RefreshFunction", "MfaFunction", "PasskeysFunction"},
    "HookPostConfirmationFunctionArn": {"VerifyFunction"},
    "HookCustomMessageFunctionArn": {"SignupFunction", "UpdateFunction", "VerifyFunction", "RecoverFunction"},
}


def invokers(out):
    """{hook parameter: roles allowed lambda:InvokeFunction on it} from a transformed template."""
    found = {}

    def walk(node, role):
        if isinstance(node, dict):
            action = node.get("Action")
            actions = action if isinstance(action, list) else [action]
            if "lambda:InvokeFunction" in actions:
                ref = node.get("Resource", {})
                ref = ref.get("Ref", "") if isinstance(ref, dict) else ""
                if ref.startswith("Hook"):
                    found.setdefault(ref, set()).add(role)
                elif role.endswith("Function"):
                    raise SystemExit(f"{role}: lambda:InvokeFunction on something other than a hook ARN")
            for v in node.values():
                walk(v, role)
        elif isinstance(node, list):
            for v in node:
                walk(v, role)

    for name, res in out["Resources"].items():
        if res.get("Type") == "AWS::IAM::Role":
            walk(res.get("Properties", {}).get("Policies", []), name.removesuffix("Role"))
    return found


# Which functions may put events on the bus: every one with a database but the sign-in hot
# path (login and refresh leave their rare events to the drain), and the drain.
EVENT_PUTTERS = {
    f"{n}Function"
    for n in ["Signup", "Logout", "Update", "Admin", "Verify", "Recover", "Mfa", "Passkeys", "Federation", "EventsDrain"]
}


def putters(out):
    """Roles allowed events:PutEvents."""
    found = set()
    for name, res in out["Resources"].items():
        if res.get("Type") == "AWS::IAM::Role" and "events:PutEvents" in json.dumps(res):
            found.add(name.removesuffix("Role"))
    return found


class NoManagedPolicies:
    def load(self):
        return {}


def main(path, outdir):
    for name, params in CASES.items():
        template = yaml_parse(open(path).read())
        # `sam deploy` puts the built code in S3 first; a placeholder stands in for it.
        template["Globals"]["Function"]["CodeUri"] = "s3://example-artifacts/code.zip"
        out = transform(template, params, NoManagedPolicies())
        target = f"{outdir}/transformed-{name}.json"
        with open(target, "w") as f:
            json.dump(out, f, indent=1)
        print(f"sam transform ({name}): {len(out['Resources'])} resources -> {target}")
        if putters(out) != EVENT_PUTTERS:
            raise SystemExit(f"events:PutEvents: {sorted(putters(out))}, expected {sorted(EVENT_PUTTERS)}")
        got = invokers(out)
        if got != HOOK_INVOKERS:
            raise SystemExit(f"hook invoke permissions: {got}, expected {HOOK_INVOKERS}")
    print("hook functions: lambda:InvokeFunction on each hook ARN for exactly the functions that run it")
    print("events: events:PutEvents on the bus for exactly the functions that publish and the drain")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
