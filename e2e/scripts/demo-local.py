#!/usr/bin/env python3
"""demo-local.py — the example manifests as e2e/demo applies them on the local stack.

Reads Kubernetes objects as JSON on stdin (one document per object, or Lists, as `kubectl
create --dry-run=client -o json` prints them) and writes them to stdout as one List, with
what this machine cannot provide swapped for what it can, each change named on stderr:

- a catalog Service's image: no registry here serves the product's images, so every catalog
  Service runs the stack's echo service (LANDLORD_ECHO_IMAGE), which answers the examples'
  probes on the ports their args name and shows the tenant context it was handed;
- a Tenant's placement: the real nodes (LANDLORD_REAL_NODE_LABEL, LANDLORD_REAL_NODE_TAINT),
  where pods run, instead of kwok's;
- a dedicated Tenant's database: the PostgreSQL major version the stack's image has
  (LANDLORD_REAL_POSTGRES_VERSION), the real nodes' StorageClass
  (LANDLORD_REAL_STORAGE_CLASS) and at most one of their volumes (LANDLORD_REAL_VOLUME_SIZE).

Everything else passes through untouched. Exits non-zero, naming the variable, when the
stack's env file was not sourced.
"""

import json
import os
import re
import sys

UNITS = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
         "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def env(name):
    value = os.environ.get(name)
    if not value:
        sys.exit(f"demo-local: {name} is not set (source the stack's env file)")
    return value


def size(quantity):
    """Bytes of a Kubernetes quantity such as 50Gi (the forms storage sizes take)."""
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?", quantity)
    if not m:
        sys.exit(f"demo-local: {quantity!r} is not a storage quantity this script reads")
    return int(m.group(1)) * UNITS[m.group(2) or ""]


def note(obj, change):
    print(f"[demo] {obj['kind']} {obj['metadata']['name']}: {change}", file=sys.stderr)


def adapt(obj):
    if not obj.get("apiVersion", "").startswith("landlord.dev/"):
        return obj
    spec = obj.setdefault("spec", {})
    if obj["kind"] == "Service":
        echo = env("LANDLORD_ECHO_IMAGE")
        if spec.get("image") != echo:
            note(obj, f"image {spec.get('image')} -> {echo}")
            spec["image"] = echo
    elif obj["kind"] == "Tenant":
        key, value = env("LANDLORD_REAL_NODE_LABEL").split("=", 1)
        spec["placement"] = {
            "nodeSelector": {key: value},
            "tolerations": [{"key": env("LANDLORD_REAL_NODE_TAINT"), "operator": "Exists",
                             "effect": "NoSchedule"}],
        }
        note(obj, "placed on the real nodes")
        database = spec.get("database") or {}
        if spec.get("tier") == "dedicated" and database.get("enabled"):
            version = env("LANDLORD_REAL_POSTGRES_VERSION")
            if database.get("version", version) != version:
                note(obj, f"PostgreSQL {database['version']} -> {version} (the stack's image)")
            database["version"] = version
            database["storageClassName"] = env("LANDLORD_REAL_STORAGE_CLASS")
            volume = env("LANDLORD_REAL_VOLUME_SIZE")
            if size(database.get("storage", volume)) > size(volume):
                note(obj, f"database storage {database['storage']} -> {volume} (a real node's volume)")
                database["storage"] = volume
    return obj


def objects(text):
    """The objects of a stream of JSON documents (kubectl prints one per object) or Lists."""
    decoder, at = json.JSONDecoder(), 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return
        doc, at = decoder.raw_decode(text, at)
        yield from doc.get("items", []) if doc.get("kind") == "List" else [doc]


def main():
    items = [adapt(obj) for obj in objects(sys.stdin.read())]
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout)


if __name__ == "__main__":
    main()
