"""Checks of the write queue's deployment files, run by deploy/check-manifests.sh (step 6).

Owns what the main check (the base kustomization, the Dockerfile, the compose demo) leaves
out: the Redis component (deploy/kubernetes/redis, rendered on top of the base), the alert
rules (deploy/prometheus/patina-alerts.yml and the PrometheusRule of
deploy/kubernetes/monitoring) and the compose file's redis service. promtool itself (check
rules, unit tests) runs in check-manifests.sh; this script checks what promtool cannot see.

Usage: check-state-and-alerts.py RENDERED_WITH_REDIS RENDERED_BASE RENDERED_MONITORING
Prints ok:/FAIL: lines and exits 1 on any problem.
"""
import os
import re
import sys
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
WITH_REDIS, BASE, MONITORING = (Path(p) for p in sys.argv[1:4])
problems = []


def ok(msg):
    print(f"ok: {msg}")


def bad(msg):
    problems.append(msg)
    print(f"FAIL: {msg}")


def get(obj, path, default=None):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return default
        obj = obj[part]
    return obj


class StrictLoader(yaml.SafeLoader):
    """Duplicate keys in a mapping are errors (PyYAML would keep the last one)."""


def _mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"duplicate key {key!r}",
                key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load(path, what):
    try:
        return [d for d in yaml.load_all(Path(path).read_text(), Loader=StrictLoader)
                if d is not None]
    except (OSError, yaml.YAMLError) as e:
        bad(f"{what}: cannot read or parse {path}: {e}")
        return []


# ---- the Redis component, rendered on the base ------------------------------------------------
kube_min = os.environ.get("KUBE_MIN", "1.30")
versions = sorted({kv.major_minor(v) for v in kv.all_versions()
                   if Version(kv.major_minor(v)) >= Version(kube_min)}, key=Version)


def schema_errors(doc, version):
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", doc["apiVersion"])
    d = f"kubernetes-json-schema/v{version}.0-local-strict"
    try:
        schema = kv.schema_contents(f"{d}/{doc['kind'].lower()}-{api}.json", version)
    except FileNotFoundError:
        return [f"no schema for {doc['apiVersion']} {doc['kind']}"]
    defs = kv.schema_contents(f"{d}/_definitions.json", version)
    registry = referencing.Resource.from_contents(defs) @ (
        referencing.Resource.from_contents(schema) @ referencing.Registry())
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator.iter_errors(doc)]


docs = [d for d in load(WITH_REDIS, "base + redis component") if isinstance(d, dict)]
schema_ok = True
for doc in docs:
    name = f"{doc.get('kind')}/{get(doc, 'metadata.name')}"
    errs = {}
    for v in versions:
        for e in schema_errors(doc, v):
            errs.setdefault(e, []).append(v)
    for e, vs in errs.items():
        bad(f"base + redis: {name} (Kubernetes {', '.join(vs)}, strict): {e}")
        schema_ok = False
    if get(doc, "metadata.namespace", "patina") != "patina" and doc.get("kind") != "Namespace":
        bad(f"base + redis: {name} is not in namespace patina")
if docs and schema_ok:
    ok(f"base + redis component: {len(docs)} objects valid against the strict schemas of "
       f"Kubernetes {versions[0]}..{versions[-1]}")


def find(kind, name):
    for d in docs:
        if d.get("kind") == kind and get(d, "metadata.name") == name:
            return d
    bad(f"base + redis: no {kind}/{name}")
    return None


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


secrets = {get(d, "metadata.name"): d for d in docs if d.get("kind") == "Secret"}


def secret_value(ref, where):
    s = secrets.get(ref.get("name"))
    vals = {**(get(s, "data") or {}), **(get(s, "stringData") or {})} if s else {}
    if ref.get("key") not in vals:
        bad(f"{where}: Secret {ref.get('name')} has no key {ref.get('key')}")
        return None
    return str(vals[ref["key"]])


before = len(problems)
for name, s in secrets.items():
    vals = {**(s.get("data") or {}), **(s.get("stringData") or {})}
    real = [k for k, v in vals.items() if "REPLACE_ME" not in str(v)]
    if real:
        bad(f"Secret/{name}: {', '.join(real)} no longer look like placeholders (no REPLACE_ME)")
if len(problems) == before:
        ok(f"base + redis: every Secret value is a REPLACE_ME placeholder ({', '.join(sorted(secrets))})")


def env_of(container, where):
    """The container's environment as the kubelet builds it, $(VAR) expanded in order."""
    env = {}
    for ef in container.get("envFrom") or []:
        s = secrets.get(get(ef, "secretRef.name"))
        env.update({k: str(v) for k, v in {**(get(s, "data") or {}),
                                           **(get(s, "stringData") or {})}.items()})
    for e in container.get("env") or []:
        if "value" in e:
            def sub(m):
                if m.group(1) not in env:
                    bad(f"{where}: env {e['name']} uses $({m.group(1)}), not set before it")
                return env.get(m.group(1), m.group(0))
            env[e["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", sub, str(e["value"]))
        elif get(e, "valueFrom.secretKeyRef"):
            env[e["name"]] = secret_value(get(e, "valueFrom.secretKeyRef"), where) or ""
    return env


def restricted(pod, c, where):
    sc, psc = c.get("securityContext") or {}, pod.get("securityContext") or {}
    checks = {
        "runAsNonRoot": sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True,
        "allowPrivilegeEscalation: false": sc.get("allowPrivilegeEscalation") is False,
        "capabilities.drop [ALL]": "ALL" in (get(sc, "capabilities.drop") or []),
        "seccompProfile RuntimeDefault": (get(sc, "seccompProfile.type")
                                          or get(psc, "seccompProfile.type")) == "RuntimeDefault",
    }
    for what, good in checks.items():
        if not good:
            bad(f"{where}: the namespace enforces the restricted standard, which needs {what}")


# Redis: persistence settings, password, volume, Service, probes, restricted pod.
sts = find("StatefulSet", "patina-redis")
svc = find("Service", "patina-redis")
redis_host = redis_port = None
before = len(problems)
if sts:
    pod = get(sts, "spec.template.spec", {})
    c = (pod.get("containers") or [{}])[0]
    where = "StatefulSet/patina-redis"
    if not str(c.get("image", "")).startswith("redis:7"):
        bad(f"{where}: image {c.get('image')!r} is not redis:7")
    args = [str(a) for a in c.get("args") or []]
    pairs = dict(zip(args[::2], args[1::2]))
    want = {"--appendonly": "yes", "--appendfsync": "everysec",
            "--maxmemory-policy": "noeviction", "--requirepass": "$(REDIS_PASSWORD)"}
    for k, v in want.items():
        if pairs.get(k) != v:
            bad(f"{where}: args need {k} {v}, have {pairs.get(k)!r}")
    env = env_of(c, where)
    for var in ("REDIS_PASSWORD", "REDISCLI_AUTH"):
        if var not in env:
            bad(f"{where}: env {var} is not set")
    claims = {get(t, "metadata.name") for t in get(sts, "spec.volumeClaimTemplates", [])}
    data_mount = next((m for m in c.get("volumeMounts") or [] if m.get("name") in claims), None)
    if not data_mount or data_mount.get("mountPath") != pairs.get("--dir"):
        bad(f"{where}: --dir {pairs.get('--dir')} is not a PersistentVolumeClaim mount")
    if not c.get("readinessProbe") or not c.get("livenessProbe"):
        bad(f"{where}: needs a readiness and a liveness probe")
    restricted(pod, c, where)
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    if svc:
        if get(sts, "spec.serviceName") != get(svc, "metadata.name"):
            bad(f"{where}: serviceName is not Service/{get(svc, 'metadata.name')}")
        labels = get(sts, "spec.template.metadata.labels", {})
        if not labels_match(get(svc, "spec.selector", {}), labels):
            bad("Service/patina-redis does not select the Redis pod")
        sp = (get(svc, "spec.ports") or [{}])[0]
        tp = sp.get("targetPort", sp.get("port"))
        if (ports.get(tp) if isinstance(tp, str) else tp) not in ports.values():
            bad(f"Service/patina-redis: targetPort {tp!r} is not a container port {ports}")
        redis_host, redis_port = get(svc, "metadata.name"), sp.get("port")
    gw = find("Service", "patina")
    if gw and labels_match(get(gw, "spec.selector", {}), get(sts, "spec.template.metadata.labels", {})):
        bad("Service/patina (the gateway's) also selects the Redis pod")
    np = find("NetworkPolicy", "patina-redis")
    dep = find("Deployment", "patina")
    if np and dep:
        if not labels_match(get(np, "spec.podSelector.matchLabels", {}),
                            get(sts, "spec.template.metadata.labels", {})):
            bad("NetworkPolicy/patina-redis does not select the Redis pod")
        froms = [get(f, "podSelector.matchLabels", {}) for r in get(np, "spec.ingress", [])
                 for f in r.get("from") or []]
        if not any(labels_match(f, get(dep, "spec.template.metadata.labels", {})) for f in froms):
            bad("NetworkPolicy/patina-redis does not let the gateway's pods in")
    if len(problems) == before:
        ok(f"{where}: {c.get('image')}, appendonly yes, appendfsync everysec, noeviction, password "
           f"from Secret, {pairs.get('--dir')} on a PersistentVolumeClaim, Service "
           f"{redis_host}:{redis_port}, restricted pod, only the gateway let in")

# The gateway: REDIS_URL reaches that Service; the config reads it with backend = "redis".
dep = find("Deployment", "patina")
cm = find("ConfigMap", "patina-config")
if dep and cm:
    c = next((c for c in get(dep, "spec.template.spec.containers", []) if c.get("name") == "patina"), {})
    env = env_of(c, "Deployment/patina")
    url = env.get("REDIS_URL", "")
    m = re.fullmatch(r"rediss?://(?::[^@]+@)?([^:/@]+):(\d+)(?:/\d+)?", url)
    if not m:
        bad(f"Deployment/patina: REDIS_URL {url!r} is not redis://:PASSWORD@HOST:PORT/DB")
    elif (m.group(1), int(m.group(2))) != (redis_host, redis_port):
        bad(f"Deployment/patina: REDIS_URL points at {m.group(1)}:{m.group(2)}, "
            f"not Service {redis_host}:{redis_port}")
    elif "REPLACE_ME" not in url:
        bad("Deployment/patina: REDIS_URL does not carry the password of the patina-redis Secret")
    else:
        ok(f"Deployment/patina: REDIS_URL reaches {redis_host}:{redis_port} with the Secret's password")
    text = get(cm, "data", {}).get("patina.toml", "")
    try:
        cfg = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        bad(f"base + redis: patina.toml is not valid TOML: {e}")
        cfg = {}
    state = cfg.get("state") or {}
    if state.get("backend") != "redis" or state.get("redis_url") != "${REDIS_URL}":
        bad(f"base + redis: patina.toml [state] is {state}, not backend = \"redis\", "
            "redis_url = \"${REDIS_URL}\"")
    unset = sorted({v for v in re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)
                    if v not in env})
    if unset:
        bad(f"base + redis: patina.toml reads {', '.join(unset)}, which the Deployment does not set")
    base_cm = next((d for d in load(BASE, "base") if isinstance(d, dict)
                    and d.get("kind") == "ConfigMap"), None)
    if base_cm and cfg:
        base_cfg = tomllib.loads(get(base_cm, "data", {}).get("patina.toml", ""))
        strip = lambda c: {k: v for k, v in c.items() if k not in ("state", "queue")}
        if strip(base_cfg) != strip(cfg):
            bad("deploy/kubernetes/redis/config.yaml: patina.toml differs from "
                "deploy/kubernetes/configmap.yaml's outside [state] and [queue]; copy the change")
        else:
            ok("redis/config.yaml: patina.toml is the base's but for [state] backend = \"redis\"")

# ---- alert rules --------------------------------------------------------------------------------
PLAIN = ROOT / "deploy/prometheus/patina-alerts.yml"
MON = ROOT / "deploy/kubernetes/monitoring"
plain = (load(PLAIN, "alert rules") or [{}])[0]
rule_docs = load(MON / "alerts.yaml", "PrometheusRule")
rule = rule_docs[0] if rule_docs else {}
if (rule.get("apiVersion"), rule.get("kind")) != ("monitoring.coreos.com/v1", "PrometheusRule") \
        or get(rule, "metadata.namespace") != "patina" or not get(rule, "metadata.name"):
    bad("deploy/kubernetes/monitoring/alerts.yaml: not a monitoring.coreos.com/v1 PrometheusRule "
        "with a name in namespace patina")
if get(rule, "spec.groups") != plain.get("groups"):
    bad("deploy/kubernetes/monitoring/alerts.yaml: spec.groups differ from "
        "deploy/prometheus/patina-alerts.yml's groups; keep them the same")
else:
    ok("monitoring/alerts.yaml: PrometheusRule spec.groups == deploy/prometheus/patina-alerts.yml")
mon_kust = (load(MON / "kustomization.yaml", "monitoring kustomization") or [{}])[0]
listed = set(mon_kust.get("resources") or [])
present = {p.name for p in MON.iterdir() if p.suffix in (".yaml", ".yml")
           and not p.name.startswith("kustomization.")}
if listed != present:
    bad(f"deploy/kubernetes/monitoring/kustomization.yaml lists {sorted(listed)}, "
        f"the folder has {sorted(present)}")
rendered_mon = load(MONITORING, "kubectl kustomize deploy/kubernetes/monitoring")
if rendered_mon != rule_docs:
    bad("kubectl kustomize deploy/kubernetes/monitoring does not render alerts.yaml as it is")


def slug(heading):
    """GitHub's anchor for a heading."""
    h = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", h))


readme = (ROOT / "README.md").read_text()
anchors = {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", readme, re.M)}
rules = [r for g in plain.get("groups") or [] for r in g.get("rules") or []]
before = len(problems)
want_alerts = {"PatinaDeadLetters", "PatinaDeliveryStalled", "PatinaQueueNearlyFull"}
if {r.get("alert") for r in rules} != want_alerts:
    bad(f"patina-alerts.yml: alerts {sorted(str(r.get('alert')) for r in rules)}, "
        f"expected {sorted(want_alerts)}")
for r in rules:
    name = r.get("alert")
    for field in ("expr", "for"):
        if not r.get(field):
            bad(f"patina-alerts.yml: {name} has no {field}")
    if get(r, "labels.severity") not in ("warning", "critical"):
        bad(f"patina-alerts.yml: {name} needs labels.severity warning or critical")
    for a in ("summary", "description", "runbook_url"):
        if not get(r, f"annotations.{a}"):
            bad(f"patina-alerts.yml: {name} has no {a} annotation")
    url = get(r, "annotations.runbook_url", "")
    if not url.split("#")[0].endswith("/README.md") or url.split("#")[-1] not in anchors:
        bad(f"patina-alerts.yml: {name}'s runbook_url {url} is not a heading of README.md")
if len(problems) == before:
    ok(f"patina-alerts.yml: {', '.join(str(r.get('alert')) for r in rules)} each have expr, "
       "for, severity, summary, description and a runbook_url that is a README heading")

# The metrics the rules read are ones the gateway exports (once it exports any of them).
metrics = sorted({m for r in rules for m in re.findall(r"\bpatina_[a-z_]+", str(r.get("expr")))})
src_text = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.rs"))
exported = [m for m in metrics if re.search(rf'"{m}\b', src_text)]
if not exported:
    print(f"skipped: src/ exports none of {', '.join(metrics)} yet")
elif exported != metrics:
    bad(f"the alert rules read {', '.join(sorted(set(metrics) - set(exported)))}, "
        "which src/ does not export")
else:
    ok(f"the alert rules read metrics the gateway exports: {', '.join(metrics)}")

# ---- docker-compose.yml: the redis service -----------------------------------------------------
compose = (load(ROOT / "deploy/docker-compose.yml", "docker-compose.yml") or [{}])[0]
services = compose.get("services") or {}
redis = services.get("redis")
if not redis:
    bad("docker-compose.yml has no redis service")
else:
    cmd = [str(a) for a in redis.get("command") or []]
    pairs = dict(zip(cmd[1::2], cmd[2::2]))
    for k, v in {"--appendonly": "yes", "--appendfsync": "everysec",
                 "--maxmemory-policy": "noeviction"}.items():
        if pairs.get(k) != v:
            bad(f"docker-compose.yml: redis needs {k} {v}")
    if not str(redis.get("image", "")).startswith("redis:7"):
        bad("docker-compose.yml: redis must run redis:7")
    if "healthcheck" not in redis:
        bad("docker-compose.yml: redis has no healthcheck")
    vols = [v.split(":")[0] for v in redis.get("volumes") or []]
    if not vols or vols[0] not in (compose.get("volumes") or {}):
        bad("docker-compose.yml: redis keeps /data on no named volume")
    if "redis" not in (redis.get("profiles") or []):
        bad("docker-compose.yml: redis should sit in the redis profile (the demo runs without it)")
    url = str(get(services, "patina.environment", {}).get("REDIS_URL", ""))
    if "@redis:6379" not in url:
        bad(f"docker-compose.yml: patina's REDIS_URL {url!r} does not point at the redis service")
    before = len(problems)
    toml_text = (ROOT / "deploy/compose/patina.toml").read_text()
    cfg = tomllib.loads(toml_text)
    if not re.search(r'^#\s*backend = "redis"$', toml_text, re.M):
        bad("deploy/compose/patina.toml: the commented switch backend = \"redis\" is missing")
    if get(cfg, "state.dir") and not any(
            str(v).split(":")[1:2] == [get(cfg, "state.dir")]
            for v in get(services, "patina.volumes", [])):
        bad(f"docker-compose.yml: nothing is mounted at [state] dir {get(cfg, 'state.dir')}")
    if len(problems) == before:
        ok("docker-compose.yml: redis:7 (profile redis) with appendonly, everysec, noeviction, a "
           "volume and a healthcheck; the gateway's REDIS_URL points at it; [state] dir is a volume")

if problems:
    print(f"{len(problems)} problem(s) in the state and alert files")
    sys.exit(1)
