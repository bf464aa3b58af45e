#!/usr/bin/env python3
"""Lints and renders the Helm chart, validates what it renders, and runs the binaries over it.

With helm-python-sdk (Helm's own engine, no cluster) and kubernetes-validate:
1. the chart lints clean, with its defaults and with each value set in VALUES_DIR;
2. each value set (the defaults, then VALUES_DIR/*.yaml) renders, and every manifest passes
   kubernetes-validate (strict) for the newest Kubernetes it knows; what each set asks for is
   checked in the manifests (mode, Service, secrets, probes, stop budget, network policy);
3. every file in VALUES_DIR/invalid/ is refused by values.schema.json;
4. the passsage and xs3lerator containers, as rendered (arguments, environment, the files their
   volumes would hold), are fed to the real binaries' check-config: accepted, with every timeout
   and every rule's timeouts arriving as the values gave them; the policy ConfigMap is the file
   passsage loads.

Usage: check_helm.py CHART PASSSAGE XS3LERATOR VALUES_DIR
Prints one line per check and "N passed, M failed"; exits 1 on any failure.
"""
import base64
import glob
import os
import subprocess
import sys
import tempfile

import helm_python
import kubernetes_validate
import yaml

from deploychecks import check, check_config, documented_names, finish, seconds

RELEASE, NAMESPACE = "ci", "cache"


def render(chart, values: dict) -> list:
    """Every manifest the chart renders for `values`, as dictionaries."""
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    manifests = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        manifests += [document for document in yaml.safe_load_all(text) if document]
    return manifests


def find(manifests: list, kind: str, component: str = None) -> list:
    return [m for m in manifests if m["kind"] == kind and
            (component is None or m["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component)]


def selects(selector: dict, deployment: dict) -> bool:
    """Whether a label selector (matchLabels, or a Service's plain map) picks the Deployment's pods."""
    wanted = selector.get("matchLabels", selector)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def merged(defaults: dict, values: dict) -> dict:
    """`values` over the chart's defaults, as Helm merges them (maps deeply, the rest replaced)."""
    result = dict(defaults)
    for key, value in values.items():
        result[key] = merged(defaults[key], value) if isinstance(value, dict) and isinstance(defaults.get(key), dict) else value
    return result


class Fixtures:
    """What a cluster would hold for the Secrets a value set names but the chart does not create:
    a CA as cert-manager makes one (a kubernetes.io/tls Secret: RSA key, CA certificate), a token,
    S3 credentials."""

    def __init__(self, directory: str):
        key, certificate = directory + "/tls.key", directory + "/tls.crt"
        self.elasticsearch_password = "es-pass-w0rd"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                        "-subj", "/CN=cert-manager test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                        "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", key, "-out", certificate],
                       check=True, capture_output=True)
        self.secrets = {
            "passsage-ca-from-cert-manager": {"tls.key": open(key, "rb").read(), "tls.crt": open(certificate, "rb").read()},
            "passsage-xs3lerator-token": {"token": b"a-token-from-the-cluster"},
            "minio-credentials": {"AWS_ACCESS_KEY_ID": b"minio", "AWS_SECRET_ACCESS_KEY": b"minio-secret"},
            "elasticsearch-credentials": {"url": f"https://elastic:{self.elasticsearch_password}@search.example.com:9200".encode()},
            "elasticsearch-api-key": {"apiKey": b"aWQ6a2V5"},
        }
        # ConfigMaps the value sets name: a corporate CA bundle for upstream TLS.
        self.config_maps = {"corporate-ca": {"ca.crt": open(certificate, "rb").read()}}

    def secret(self, manifests: list, name: str) -> dict:
        """A Secret's data, decoded: the one the chart renders, else the cluster's fixture."""
        for secret in find(manifests, "Secret"):
            if secret["metadata"]["name"] == name:
                return {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}
        return self.secrets[name]


def materialise(container: dict, pod: dict, manifests: list, fixtures: Fixtures, root: str):
    """The container's arguments and environment with every mounted path moved under `root`,
    where the files its volumes would hold are written."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {}
    for mount in container.get("volumeMounts", []):
        local = root + mount["mountPath"]
        os.makedirs(local, exist_ok=True)
        mounts[mount["mountPath"]] = local
        volume = volumes[mount["name"]]
        files = {}
        if "secret" in volume:
            data = fixtures.secret(manifests, volume["secret"]["secretName"])
            items = volume["secret"].get("items") or [{"key": k, "path": k} for k in data]
            files = {item["path"]: data[item["key"]] for item in items}
        elif "configMap" in volume:
            name = volume["configMap"]["name"]
            rendered = [m for m in find(manifests, "ConfigMap") if m["metadata"]["name"] == name]
            data = {k: v.encode() for k, v in rendered[0]["data"].items()} if rendered else fixtures.config_maps[name]
            items = volume["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            files = {item["path"]: data[item["key"]] for item in items}
        for path, content in files.items():
            with open(os.path.join(local, path), "wb") as file:
                file.write(content)

    def relocate(value: str) -> str:
        for mount_path, local in sorted(mounts.items(), key=lambda item: -len(item[0])):
            if value == mount_path or value.startswith(mount_path + "/"):
                return local + value[len(mount_path):]
        return value

    environment = {}
    for source in container.get("envFrom", []):
        environment.update({k: v.decode() for k, v in fixtures.secret(manifests, source["secretRef"]["name"]).items()})
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = relocate(variable["value"])
        else:
            reference = variable["valueFrom"]["secretKeyRef"]
            environment[variable["name"]] = fixtures.secret(manifests, reference["name"])[reference["key"]].decode()
    arguments = [relocate(a) for a in container.get("args", [])]
    return arguments, environment


def check_stopping(label: str, name: str, pod: dict, grace, pre_stop: int) -> None:
    container = pod["containers"][0]
    stop = seconds(grace) + pre_stop
    check(pod["terminationGracePeriodSeconds"] > stop,
          f"{label}: {name}: terminationGracePeriodSeconds {pod['terminationGracePeriodSeconds']} > preStop + grace ({stop:g}s)")
    check(container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(pre_stop)], f"{label}: {name}: preStop pauses {pre_stop}s")
    liveness = container["livenessProbe"]
    check(liveness["periodSeconds"] * liveness["failureThreshold"] > pod["terminationGracePeriodSeconds"],
          f"{label}: {name}: liveness never restarts a draining pod")


def check_manifests(label: str, values: dict, manifests: list) -> None:
    split = values["mode"] == "split"
    proxies, data_planes = find(manifests, "Deployment", "proxy"), find(manifests, "Deployment", "xs3lerator")
    if not check(len(proxies) == 1 and len(data_planes) == (1 if split else 0),
                 f"{label}: a passsage Deployment{' and an xs3lerator one' if split else ', no xs3lerator'}"):
        return
    deployments = {"proxy": proxies[0], "xs3lerator": data_planes[0] if split else None}
    component_values = {"proxy": values["passsage"], "xs3lerator": values["xs3lerator"]}
    proxy = proxies[0]["spec"]
    check(proxy.get("replicas") == (None if split and values["passsage"]["autoscaling"]["enabled"]
                                    else values["passsage"]["replicas"] if split else 1),
          f"{label}: passsage replicas {proxy.get('replicas')}")

    service = find(manifests, "Service", "proxy")[0]
    check(service["spec"]["type"] == values["service"]["type"] and
          service["metadata"].get("annotations", {}) == values["service"]["annotations"],
          f"{label}: passsage's Service is a {values['service']['type']} with the annotations given")
    check(selects(service["spec"]["selector"], deployments["proxy"]) and
          service["spec"]["ports"][0]["targetPort"] in [p["name"] for p in proxy["template"]["spec"]["containers"][0]["ports"]],
          f"{label}: passsage's Service selects its pods, on the proxy port")
    if values["service"]["type"] != "ClusterIP":
        check(service["spec"]["externalTrafficPolicy"] == values["service"]["externalTrafficPolicy"],
              f"{label}: externalTrafficPolicy {values['service']['externalTrafficPolicy']}")

    pod = proxy["template"]["spec"]
    container = pod["containers"][0]
    check_stopping(label, "passsage", pod, values["timeouts"]["shutdownGrace"], values["timeouts"]["preStopSeconds"])
    probes = [container[p]["httpGet"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
    check(all(p == {"path": "/health", "port": "health"} for p in probes), f"{label}: passsage's probes ask /health")
    if split:
        xs3_pod = deployments["xs3lerator"]["spec"]["template"]["spec"]
        check_stopping(label, "xs3lerator", xs3_pod, values["timeouts"]["xs3lerator"]["shutdownGrace"], values["timeouts"]["preStopSeconds"])
        probes = [xs3_pod["containers"][0][p]["httpGet"] for p in ("startupProbe", "readinessProbe", "livenessProbe")]
        check(all(p == {"path": "/healthz", "port": "http"} for p in probes), f"{label}: xs3lerator's probes ask /healthz")
        xs3_service = find(manifests, "Service", "xs3lerator")
        check(len(xs3_service) == 1 and xs3_service[0]["spec"]["type"] == "ClusterIP" and
              selects(xs3_service[0]["spec"]["selector"], deployments["xs3lerator"]),
              f"{label}: xs3lerator's Service is a ClusterIP selecting its pods")
        for variable in container["env"] + xs3_pod["containers"][0]["env"]:
            if variable["name"].endswith("ELASTICSEARCH_URL"):
                from_secret = bool(values["elasticsearch"]["existingSecret"])
                check(("valueFrom" in variable) == from_secret and "@" not in variable.get("value", ""),
                      f"{label}: {variable['name']} {'from its Secret' if from_secret else 'plain, without credentials'}")

    ca_secret = next(v for v in pod["volumes"] if v["name"] == "ca")["secret"]["secretName"]
    rendered_secrets = {s["metadata"]["name"]: s for s in find(manifests, "Secret")}
    if values["ca"]["existingSecret"]:
        check(ca_secret == values["ca"]["existingSecret"] and ca_secret not in rendered_secrets,
              f"{label}: the CA comes from the existing Secret {ca_secret}")
    else:
        generated = rendered_secrets.get(ca_secret, {})
        check(generated.get("type") == "kubernetes.io/tls" and
              generated.get("metadata", {}).get("annotations", {}).get("helm.sh/resource-policy") == "keep",
              f"{label}: the CA is generated into {ca_secret} and kept")

    persistence = values["passsage"]["embedded"]["persistence"]
    claims = find(manifests, "PersistentVolumeClaim")
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    if split or not persistence["enabled"]:
        check(not claims and "emptyDir" in data, f"{label}: passsage's /data is an emptyDir, no claim")
    else:
        claim = persistence["existingClaim"] or f"{RELEASE}-passsage-data"
        check(data.get("persistentVolumeClaim", {}).get("claimName") == claim and
              len(claims) == (0 if persistence["existingClaim"] else 1),
              f"{label}: passsage's /data is the claim {claim}{' (existing)' if persistence['existingClaim'] else ''}")
        check(proxy["strategy"]["type"] == "Recreate", f"{label}: the embedded pod is replaced, never doubled")

    policies = {p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component"): p
                for p in find(manifests, "NetworkPolicy")}
    if split and values["networkPolicy"]["enabled"]:
        xs3_policy = policies.get("xs3lerator", {}).get("spec", {})
        peers = (xs3_policy.get("ingress") or [{}])[0].get("from", [])
        check(selects(xs3_policy.get("podSelector", {}), deployments["xs3lerator"]) and len(xs3_policy["ingress"]) == 1 and
              selects(peers[0].get("podSelector", {}), deployments["proxy"]) and peers[1:] == values["networkPolicy"]["metricsFrom"],
              f"{label}: only passsage's pods (and networkPolicy.metricsFrom) reach xs3lerator")
    else:
        check("xs3lerator" not in policies, f"{label}: no xs3lerator NetworkPolicy")
    proxy_from = values["networkPolicy"]["proxyFrom"] if values["networkPolicy"]["enabled"] else []
    if proxy_from:
        rules = policies.get("proxy", {}).get("spec", {}).get("ingress", [])
        check(selects(policies["proxy"]["spec"]["podSelector"], deployments["proxy"]) and
              rules[0]["from"] == proxy_from and rules[0]["ports"][0]["port"] == "proxy" and rules[1]["ports"][0]["port"] == "health",
              f"{label}: the proxy port only from networkPolicy.proxyFrom, the health port open")
    else:
        check("proxy" not in policies, f"{label}: no NetworkPolicy in front of the proxy port")

    budgets = find(manifests, "PodDisruptionBudget")
    check(len(budgets) == (2 if split else 1), f"{label}: a PodDisruptionBudget per component")
    for budget in budgets:
        component = budget["metadata"]["labels"]["app.kubernetes.io/component"]
        wanted = component_values[component]["podDisruptionBudget"]
        expected = ({"minAvailable": wanted["minAvailable"]} if split and wanted.get("minAvailable") is not None else
                    {"maxUnavailable": wanted["maxUnavailable"]} if split and wanted.get("maxUnavailable") is not None else
                    {"maxUnavailable": 1})
        got = {k: v for k, v in budget["spec"].items() if k != "selector"}
        check(got == expected and selects(budget["spec"]["selector"], deployments[component]),
              f"{label}: {component}'s budget is {got} and selects its pods")
    for component in ("proxy", "xs3lerator"):
        autoscaled = split and component_values[component]["autoscaling"]["enabled"]
        hpas = find(manifests, "HorizontalPodAutoscaler", component)
        check(len(hpas) == (1 if autoscaled else 0) and
              all(h["spec"]["scaleTargetRef"]["name"] == deployments[component]["metadata"]["name"] for h in hpas),
              f"{label}: {'an' if autoscaled else 'no'} autoscaler for {component}")

    accounts = find(manifests, "ServiceAccount")
    account = values["serviceAccount"]
    name = (account["name"] or f"{RELEASE}-passsage") if account["create"] else (account["name"] or "default")
    check(len(accounts) == (1 if account["create"] else 0) and
          all(a["metadata"].get("annotations", {}) == account["annotations"] for a in accounts) and
          all(d["spec"]["template"]["spec"]["serviceAccountName"] == name for d in deployments.values() if d),
          f"{label}: the pods run as the ServiceAccount {name}{' (created, with the annotations given)' if account['create'] else ''}")

    tests = find(manifests, "Pod", "test")
    check(len(tests) == (1 if values["tests"]["enabled"] else 0), f"{label}: {'a' if values['tests']['enabled'] else 'no'} helm test pod")
    for test in tests:
        test_volumes = {v["name"]: v for v in test["spec"]["volumes"]}
        for component, deployment in deployments.items():
            if not deployment:
                continue
            spec = deployment["spec"]["template"]["spec"]
            ours = spec["containers"][0]
            theirs = next((c for c in test["spec"]["containers"] if c["name"] == ours["name"]), None)
            mounted = {m["name"] for m in ours.get("volumeMounts", [])} - {"data", "tmp", "cache"}
            check(theirs is not None and theirs["env"] == ours["env"] and theirs.get("envFrom") == ours.get("envFrom") and
                  theirs["args"] == ["check-config"] + ours["args"][1:] and
                  theirs["volumeMounts"] == ours["volumeMounts"] and
                  all(test_volumes.get(v["name"]) == v for v in spec["volumes"] if v["name"] in mounted),
                  f"{label}: the helm test runs {ours['name']} check-config with the same environment, arguments and files")


def check_processes(label, values, manifests, binaries, names, fixtures) -> None:
    scratch = tempfile.mkdtemp(prefix="helm-check-")
    workloads = [("passsage", find(manifests, "Deployment", "proxy"), values["timeouts"],
                  {"upstreamConnect": "upstream-connect-timeout", "upstreamRead": "upstream-read-timeout",
                   "clientIdle": "client-idle-timeout", "clientHeader": "client-header-timeout",
                   "shutdownGrace": "shutdown-grace-period"}),
                 ("xs3lerator", find(manifests, "Deployment", "xs3lerator"), values["timeouts"]["xs3lerator"],
                  {"upstreamConnect": "upstream-connect-timeout", "upstreamRead": "upstream-read-timeout",
                   "clientHead": "client-head-timeout", "clientWriteStall": "client-write-stall-timeout",
                   "shutdownGrace": "shutdown-grace-period"})]
    for binary_name, deployments, timeouts, keys in workloads:
        for deployment in deployments:
            pod = deployment["spec"]["template"]["spec"]
            container = pod["containers"][0]
            arguments, environment = materialise(container, pod, manifests, fixtures, f"{scratch}/{binary_name}")
            prefix = "PASSSAGE_" if binary_name == "passsage" else "XS3_"
            unknown = sorted(k for k in environment if k.startswith(prefix) and k not in names[binary_name])
            check(not unknown, f"{label}: {binary_name}: every {prefix}* variable is one it takes {unknown or ''}")
            check(arguments[:1] == ["serve"], f"{label}: {binary_name} runs serve")
            run, report = check_config(binaries[binary_name], arguments[1:], environment)
            if not check(run.returncode == 0, f"{label}: {binary_name} check-config accepts the rendered container {run.stderr.strip()}"):
                continue
            if values["mode"] == "split":
                es = values["elasticsearch"]
                authentication = ("Basic authentication as elastic" if es["existingSecret"] else
                                  "an API key" if es["apiKeySecret"] else "no authentication")
                metadata = report.get("metadata", "")
                check(metadata.startswith("Elasticsearch https://" if es["existingSecret"] else "Elasticsearch " + es["url"]) and
                      metadata.endswith(authentication) and fixtures.elasticsearch_password not in run.stdout,
                      f"{label}: {binary_name} reaches Elasticsearch with {authentication}, never printed: {metadata}")
            for value_key, report_key in keys.items():
                got = report.get(report_key, "")
                check(got != "" and seconds(got) == seconds(timeouts[value_key]),
                      f"{label}: {binary_name}: timeouts {value_key}={timeouts[value_key]} arrives as {report_key}: {got}")
            if binary_name == "passsage":
                check_policy(label, values, report, run.stdout)
                check(report.get("ca") == "from --mitm-ca", f"{label}: passsage takes the CA from its Secret: {report.get('ca')}")
                cache = report.get("cache", "")
                if values["mode"] == "split":
                    check(cache.startswith("split, bodies from xs3lerator at http://") and cache.endswith("(auth token set)"),
                          f"{label}: passsage is split, with the token: {cache}")
                else:
                    check(cache.startswith("embedded, objects under ") and cache.endswith("/data/cache"),
                          f"{label}: passsage is embedded, on the data volume: {cache}")


def check_policy(label, values, report, output) -> None:
    policy = values["policy"]
    rules = [line for line in output.splitlines() if line.startswith("rule ")]
    check(report.get("default-policy") == policy["defaultPolicy"] and
          report.get("built-in rules") == ("after the file's" if policy["includeDefaults"] else "off") and
          len(rules) == len(policy["rules"]),
          f"{label}: the policy ConfigMap loads: default {report.get('default-policy')}, {len(rules)} rules")
    for number, (rule, line) in enumerate(zip(policy["rules"], rules), start=1):
        described = line.split(": ", 1)[1].split(", ")
        check(described[0] == rule["policy"], f"{label}: rule {number} is {rule['policy']}: {line}")
        for part in ("connect", "read"):
            if part not in rule.get("timeouts", {}):
                continue
            got = next((d.split(" timeout ")[1] for d in described if d.startswith(part + " timeout ")), "")
            check(got != "" and seconds(got) == seconds(rule["timeouts"][part]),
                  f"{label}: rule {number}: timeouts.{part}={rule['timeouts'][part]} arrives: {got}")


def main() -> None:
    chart_path, passsage, xs3lerator, values_dir = sys.argv[1:]
    chart = helm_python.Chart.load(chart_path)
    defaults = yaml.safe_load(open(os.path.join(chart_path, "values.yaml")))
    binaries = {"passsage": passsage, "xs3lerator": xs3lerator}
    names = {name: documented_names(binary) for name, binary in binaries.items()}
    fixtures = Fixtures(tempfile.mkdtemp(prefix="helm-fixtures-"))
    version = kubernetes_validate.latest_version()

    sets = [("defaults", {})] + [(os.path.basename(p), yaml.safe_load(open(p)))
                                 for p in sorted(glob.glob(os.path.join(values_dir, "*.yaml")))]
    for label, values in sets:
        lint = helm_python.lint(chart_path, values, strict=True, namespace=NAMESPACE)
        # Helm's severities: 1 information, 2 warning, 3 error.
        findings = [m for m in lint.get("messages") or [] if m.get("severity", 3) >= 2]
        check(not lint.get("errors") and not findings, f"{label}: the chart lints clean {lint.get('errors') or ''} {findings or ''}")
        try:
            manifests = render(chart, values)
        except helm_python.HelmError as error:
            check(False, f"{label}: renders: {error}")
            continue
        for manifest in manifests:
            what = f"{manifest['kind']} {manifest['metadata']['name']}"
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
                check(True, f"{label}: {what} is valid for Kubernetes {version}")
            except kubernetes_validate.ValidationError as error:
                check(False, f"{label}: {what} is valid for Kubernetes {version}: {error.message} at {list(error.path)}")
        full = merged(defaults, values)
        check_manifests(label, full, manifests)
        check_processes(label, full, manifests, binaries, names, fixtures)

    for path in sorted(glob.glob(os.path.join(values_dir, "invalid", "*.yaml"))):
        label = "invalid/" + os.path.basename(path)
        # Each file's first line names the value the schema must point at: "# refused at /s3/bucket".
        where = open(path).readline().split("refused at ", 1)[1].strip()
        try:
            render(chart, yaml.safe_load(open(path)))
            check(False, f"{label}: refused by values.schema.json (it rendered)")
        except helm_python.HelmValuesError as error:
            message = " ".join(str(error).split())
            check(f"at '{where}'" in message or where in message, f"{label}: refused by values.schema.json at {where}: {message[message.find('- at'):][:120]}")
    finish()


if __name__ == "__main__":
    main()
