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
    "all-on": {"JwtAuthorizerExample": "true", "JwtIssuer": "https://auth.example.com"},
}


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


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
