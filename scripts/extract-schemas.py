#!/usr/bin/env python3
"""Extract self-contained JSON schemas from RingCentral's OpenAPI spec.

Usage: scripts/extract-schemas.py PATH/TO/rc-public-openapi.yml [OUT_DIR]

Writes OUT_DIR/<Name>.json (default fixtures/openapi/) for each schema the simulator's
responses are validated against, with every `$ref` inlined (recursion is cut to `{}`)
and OpenAPI-only keywords translated to JSON Schema (`nullable`, `example`, `x-*`).
Tests read only the written files, never the spec (a fresh clone has no ../shared).
Needs PyYAML.
"""

import json
import os
import sys

import yaml

SCHEMAS = [
    "TokenInfo",
    "SubscriptionInfo",
    "SubscriptionListResource",
    "ApiErrorResponseModel",
    "CallLogResponse",
    "CallLogSyncResponse",
    "GetMessageList",
    "GetExtensionListResponse",
    "GetExtensionInfoResponse",
    "AuthProfileResource",
    "AuthProfileCheckResource",
    "ExtensionListEvent",
]

# Error answers defined under components/responses rather than components/schemas.
RESPONSES = ["OauthInvalidRequest"]

DROP = {"example", "examples", "xml", "discriminator", "readOnly", "writeOnly",
        "externalDocs", "deprecated"}


def inline(node, components, stack):
    if isinstance(node, list):
        return [inline(n, components, stack) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in stack:
            return {}
        return inline(components[name], components, stack + [name])
    out = {}
    for key, value in node.items():
        if key in DROP or key.startswith("x-"):
            continue
        if key == "properties":
            out[key] = {k: inline(v, components, stack) for k, v in value.items()}
        else:
            out[key] = inline(value, components, stack)
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    spec_path = sys.argv[1]
    out_dir = sys.argv[2] if len(sys.argv) > 2 else "fixtures/openapi"
    with open(spec_path, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    components = spec["components"]["schemas"]
    responses = spec["components"]["responses"]
    os.makedirs(out_dir, exist_ok=True)
    sources = [(n, components[n]) for n in SCHEMAS]
    for name in RESPONSES:
        sources.append((name, responses[name]["content"]["application/json"]["schema"]))
    for name, source in sources:
        schema = inline(source, components, [name])
        schema["$schema"] = "http://json-schema.org/draft-07/schema#"
        schema["title"] = name
        with open(os.path.join(out_dir, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(schema, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
