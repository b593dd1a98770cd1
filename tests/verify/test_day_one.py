"""What a person does with a new cluster on day one, against a pod on every node (the control plane too).

`kubectl exec` (plain, and `-it` through a pseudo-terminal), `attach`, `logs` (also `--previous` after a
container restart), `port-forward` and `cp`; pod-to-pod traffic between every two nodes; a ClusterIP
Service from pods on other nodes and from every node; CoreDNS from a pod on every node; a NodePort on
every node's address; the kubelet's `/configz` through the API server's node proxy; a static pod on each
worker appearing as a mirror pod and going away with its file.

The pods run agnhost (Kubernetes' own e2e test image) with `imagePullPolicy: Never`: it must already be
loaded on every node (`cluster_load_test_images: true`, from the bundle's `test` group); nothing is pulled.
A failing check prints the command, its output, and the pod's node, state and events.
"""

from __future__ import annotations

import json
import re
import secrets
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pytest

if TYPE_CHECKING:
    from conftest import Cluster

ADMIN = "/etc/kubernetes/admin.conf"
KUBECTL = f"kubectl --kubeconfig {ADMIN}"
APP = "kubelab-day-one"
TARGET = "kubelab-target"
STATIC = "kubelab-static"
NETEXEC_PORT = 8080
WAIT_PODS = 240

# The console container: exits once (so that `kubectl logs --previous` has something to show), then
# echoes every line it reads on its stdin (for `kubectl attach`). /state survives the restart.
CONSOLE_SCRIPT = """\
if [ ! -e /state/started ]; then
  : > /state/started
  echo "kubelab first run on $NODE_NAME"
  exit 3
fi
echo "kubelab second run on $NODE_NAME"
while true; do
  if read -r line; then echo "attach got: $line"; else sleep 1; fi
done
"""


@dataclass
class Result:
    command: str
    rc: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return (
            f"$ {self.command}\n(exit {self.rc})\n--- stdout\n{self.stdout.strip()[-3000:]}\n"
            f"--- stderr\n{self.stderr.strip()[-3000:]}"
        )


@dataclass
class Workload:
    """The test objects in their own namespace: a DaemonSet pod per node, a target pod and its Service."""

    cluster: Cluster
    namespace: str
    image: str
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)  # node name -> DaemonSet pod
    target: dict[str, Any] = field(default_factory=dict)
    service: dict[str, Any] = field(default_factory=dict)

    def sh(self, command: str, host: str | None = None) -> Result:
        """A shell command on `host` (default: the control plane), as the inventory reaches it."""
        node = self.cluster.host(host) if host else self.cluster.cp
        out = node.run(command)
        return Result(command, out.rc, out.stdout, out.stderr)

    def kubectl(self, args: str) -> Result:
        return self.sh(f"{KUBECTL} {args}")

    def raw(self, path: str) -> Result:
        return self.kubectl(f"get --raw {shlex.quote(path)}")

    def pod_proxy(self, pod: str, path: str, **query: Any) -> Result:
        q = f"?{urlencode(query)}" if query else ""
        return self.raw(f"/api/v1/namespaces/{self.namespace}/pods/{pod}:{NETEXEC_PORT}/proxy{path}{q}")

    def explain(self, pod: str | None = None) -> str:
        """What a person looks at next: the pod's node and state, its events, the namespace's pods."""
        parts = []
        if pod:
            parts.append(str(self.kubectl(f"-n {self.namespace} get pod {pod} -o wide")))
            parts.append(str(self.kubectl(f"-n {self.namespace} describe pod {pod}")))
        parts.append(str(self.kubectl(f"-n {self.namespace} get pods,svc,endpointslices -o wide")))
        parts.append(str(self.kubectl(f"-n {self.namespace} get events --sort-by=.lastTimestamp")))
        return "\n\n".join(parts)

    def fail(self, what: str, result: Result | None = None, pod: str | None = None) -> None:
        body = f"{what}\n\n{result}" if result else what
        pytest.fail(f"{body}\n\n===== diagnostics\n{self.explain(pod)}", pytrace=False)

    def wait(self, what: str, probe, timeout: float, *, interval: float = 2, pod: str | None = None) -> Any:
        """Cluster.wait (conftest) on probe() -> (value, Result or None); when it runs out, fail with the
        last command's result and the diagnostics of explain()."""
        last: list[Result] = []

        def value() -> Any:
            got, res = probe()
            last[:] = [res] if res is not None else []
            return got

        try:
            return self.cluster.wait(what, value, timeout=timeout, interval=interval)
        except AssertionError as exc:
            self.fail(str(exc), last[0] if last else None, pod)

    def pod(self, node: str) -> str:
        if node not in self.pods:
            self.fail(f"no {APP} pod runs on {node} (pods on: {sorted(self.pods)})")
        return self.pods[node]["metadata"]["name"]


def _json(result: Result) -> Any:
    try:
        return json.loads(result.stdout)
    except ValueError:
        return None


def _agnhost_image(cluster: Cluster) -> str:
    """The agnhost image every expected node has loaded (the same reference on all of them)."""
    found: dict[str, list[str]] = {}
    for node in cluster.nodes:
        out = cluster.host(node).run("docker images --format '{{.Repository}}:{{.Tag}}'")
        found[node] = sorted(ref for ref in out.stdout.split() if ref.rsplit(":", 1)[0].endswith("/agnhost"))
    common = set.intersection(*(set(v) for v in found.values())) if found else set()
    if not common:
        pytest.fail(
            f"agnhost is not loaded on every node ({found}). The day-one checks run it with imagePullPolicy Never: "
            "set cluster_load_test_images: true in the inventory (needs a bundle with the test group, as "
            "tests/lab/build/build.py makes) and run site.yml again.",
            pytrace=False,
        )
    return sorted(common)[-1]


def _manifests(ns: str, image: str, target_node: str) -> list[dict[str, Any]]:
    netexec = {
        "name": "netexec",
        "image": image,
        "imagePullPolicy": "Never",
        "args": ["netexec", f"--http-port={NETEXEC_PORT}"],
        "ports": [{"containerPort": NETEXEC_PORT}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": NETEXEC_PORT}, "periodSeconds": 2},
    }
    node_env = [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": {"app.kubernetes.io/part-of": APP}},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": APP, "namespace": ns},
            "spec": {
                "selector": {"matchLabels": {"app": APP}},
                "template": {
                    "metadata": {"labels": {"app": APP}},
                    "spec": {
                        "tolerations": [{"operator": "Exists"}],  # the control plane too
                        "terminationGracePeriodSeconds": 1,
                        "containers": [
                            netexec,
                            {
                                "name": "console",
                                "image": image,
                                "imagePullPolicy": "Never",
                                "command": ["/bin/sh", "-c", CONSOLE_SCRIPT],
                                "stdin": True,
                                "env": node_env,
                                "volumeMounts": [{"name": "state", "mountPath": "/state"}],
                            },
                        ],
                        "volumes": [{"name": "state", "emptyDir": {}}],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": TARGET, "namespace": ns, "labels": {"app": TARGET}},
            "spec": {
                "nodeName": target_node,
                "tolerations": [{"operator": "Exists"}],
                "terminationGracePeriodSeconds": 1,
                "containers": [netexec],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": TARGET, "namespace": ns},
            "spec": {
                "type": "NodePort",
                "selector": {"app": TARGET},
                "ports": [{"name": "http", "port": 80, "targetPort": NETEXEC_PORT}],
            },
        },
    ]


def _ready(pod: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return pod.get("status", {}).get("phase") == "Running" and conds.get("Ready") == "True"


def _console_restarted(pod: dict[str, Any]) -> bool:
    for status in pod.get("status", {}).get("containerStatuses", []):
        if status["name"] == "console":
            return status.get("restartCount", 0) >= 1 and "running" in status.get("state", {})
    return False


@pytest.fixture(scope="module")
def workload(cluster: Cluster) -> Workload:
    image = _agnhost_image(cluster)
    ns = f"kubelab-verify-{secrets.token_hex(3)}"
    target_node = (cluster.workers or cluster.control_plane)[-1]
    w = Workload(cluster, ns, image)
    manifest = shlex.quote(
        json.dumps({"apiVersion": "v1", "kind": "List", "items": _manifests(ns, image, target_node)})
    )
    created = w.sh(f"echo {manifest} | {KUBECTL} create -f -")
    try:
        if created.rc != 0:
            w.fail("creating the day-one test objects failed", created)

        def settled() -> tuple[Any, None]:
            pods = (_json(w.kubectl(f"-n {ns} get pods -o json")) or {"items": []})["items"]
            ds = {p["spec"].get("nodeName"): p for p in pods if p["metadata"].get("labels", {}).get("app") == APP}
            target = next((p for p in pods if p["metadata"]["name"] == TARGET), {})
            ready = (
                set(cluster.nodes) <= set(ds)
                and all(_ready(ds[n]) and _console_restarted(ds[n]) for n in cluster.nodes)
                and _ready(target)
            )
            return ((ds, target) if ready else None), None

        w.pods, w.target = w.wait(
            "the day-one pods on every node Ready (console restarted once) and the target Ready",
            settled,
            WAIT_PODS,
            interval=3,
        )
        w.service = _json(w.kubectl(f"-n {ns} get service {TARGET} -o json")) or {}
        yield w
    finally:
        w.kubectl(f"delete namespace {ns} --wait=false --ignore-not-found")


# --------------------------------------------------------------------------- kubectl against a pod on every node


def test_exec(workload: Workload, node: str) -> None:
    pod = workload.pod(node)
    res = workload.kubectl(f"-n {workload.namespace} exec {pod} -c netexec -- sh -c 'echo exec-ok $(hostname)'")
    if res.rc != 0 or res.stdout.strip() != f"exec-ok {pod}":
        workload.fail(f"kubectl exec into {pod} on {node} did not answer 'exec-ok {pod}'", res, pod)


def test_exec_tty(workload: Workload, node: str) -> None:
    """`kubectl exec -it`, with kubectl itself on a pseudo-terminal (script(1)), as a person types it."""
    pod = workload.pod(node)
    inner = f"{KUBECTL} -n {workload.namespace} exec -it {pod} -c netexec -- sh -c 'tty; echo tty-ok'"
    res = workload.sh(f"script -qec {shlex.quote(inner)} /dev/null </dev/null")
    if res.rc != 0 or "tty-ok" not in res.stdout or "/dev/pts/" not in res.stdout:
        workload.fail(f"kubectl exec -it into {pod} on {node} got no terminal (want /dev/pts/N and tty-ok)", res, pod)


def test_attach(workload: Workload, node: str) -> None:
    pod = workload.pod(node)
    word = f"hello-{secrets.token_hex(3)}"
    # stdin stays open a few seconds after the word (kubectl ends the session when its stdin ends, maybe before
    # the echo comes back); timeout ends kubectl then (exit 124 expected)
    res = workload.sh(
        f"(echo {word}; sleep 4) | timeout 10 {KUBECTL} -n {workload.namespace} attach -i {pod} -c console"
    )
    if f"attach got: {word}" not in res.stdout:
        workload.fail(f"kubectl attach -i to {pod} on {node}: the container did not echo {word!r}", res, pod)


def test_logs_and_previous(workload: Workload, node: str) -> None:
    pod = workload.pod(node)
    now = workload.kubectl(f"-n {workload.namespace} logs {pod} -c console")
    if now.rc != 0 or f"kubelab second run on {node}" not in now.stdout:
        workload.fail(f"kubectl logs of {pod} on {node} lacks the running container's first line", now, pod)
    prev = workload.kubectl(f"-n {workload.namespace} logs --previous {pod} -c console")
    if prev.rc != 0 or f"kubelab first run on {node}" not in prev.stdout:
        workload.fail(f"kubectl logs --previous of {pod} on {node} lacks the restarted container's output", prev, pod)
    netexec = workload.kubectl(f"-n {workload.namespace} logs {pod} -c netexec")
    if netexec.rc != 0 or str(NETEXEC_PORT) not in netexec.stdout:
        workload.fail(f"kubectl logs of {pod}/netexec on {node} does not show the server starting", netexec, pod)


def test_port_forward(workload: Workload, node: str) -> None:
    pod = workload.pod(node)
    log = f"/tmp/kubelab-pf-{secrets.token_hex(3)}.log"
    script = (
        f"{KUBECTL} -n {workload.namespace} port-forward pod/{pod} :{NETEXEC_PORT} >{log} 2>&1 & pid=$!; "
        "port=''; for i in $(seq 100); do "
        f"port=$(sed -n 's/^Forwarding from 127.0.0.1:\\([0-9]*\\) .*/\\1/p' {log}); "
        '[ -n "$port" ] && break; sleep 0.2; done; '
        'echo "port=$port"; curl -s --max-time 10 "http://127.0.0.1:$port/hostname"; rc=$?; '
        f"kill $pid; wait $pid 2>/dev/null; echo; cat {log}; rm -f {log}; exit $rc"
    )
    res = workload.sh(script)
    lines = res.stdout.splitlines()
    if res.rc != 0 or len(lines) < 2 or lines[1].strip() != pod:
        workload.fail(f"kubectl port-forward to {pod} on {node}: /hostname did not answer {pod!r}", res, pod)


def test_cp(workload: Workload, node: str) -> None:
    pod = workload.pod(node)
    token = secrets.token_hex(8)
    local = f"/tmp/kubelab-cp-{token}"
    ns = workload.namespace
    res = workload.sh(
        f"set -e; echo {token} >{local}; "
        f"{KUBECTL} cp {local} {ns}/{pod}:/tmp/cp-in -c netexec; "
        f"{KUBECTL} -n {ns} exec {pod} -c netexec -- cat /tmp/cp-in; "
        f"{KUBECTL} cp {ns}/{pod}:/tmp/cp-in {local}.back -c netexec; "
        f"cat {local}.back; rm -f {local} {local}.back"
    )
    # tar in the pod may say "removing leading '/' from member names" (GNU tar does too)
    carried = [line.strip() for line in res.stdout.splitlines() if not line.startswith("tar: ")]
    if res.rc != 0 or carried != [token, token]:
        workload.fail(f"kubectl cp to and from {pod} on {node} did not carry {token!r} both ways", res, pod)


# --------------------------------------------------------------------------- the pod network, Services and DNS


def _dial(workload: Workload, from_pod: str, host: str, port: int) -> tuple[list[str], Result]:
    res = workload.pod_proxy(from_pod, "/dial", request="hostname", protocol="http", host=host, port=port, tries=1)
    data = _json(res) or {}
    return data.get("responses") or [], res


def test_pod_to_pod_between_nodes(workload: Workload, node: str) -> None:
    """The pod on `node` reaches the pod on every other node, by pod IP (through netexec's /dial)."""
    src = workload.pod(node)
    others = [n for n in workload.cluster.nodes if n != node]
    if not others:
        pytest.fail("the cluster has one node: pod-to-pod traffic between nodes needs two", pytrace=False)
    for other in others:
        dst = workload.pods[other]
        got, res = _dial(workload, src, dst["status"]["podIP"], NETEXEC_PORT)
        if got != [dst["metadata"]["name"]]:
            workload.fail(
                f"{src} on {node} did not reach {dst['metadata']['name']} on {other} at "
                f"{dst['status']['podIP']}:{NETEXEC_PORT} (got {got})",
                res,
                src,
            )


def test_cluster_ip_from_pods_on_other_nodes(workload: Workload) -> None:
    target_node = workload.target["spec"]["nodeName"]
    ip = workload.service["spec"]["clusterIP"]
    sources = [n for n in workload.cluster.nodes if n != target_node]
    if not sources:
        pytest.fail("the cluster has one node: a Service from another node needs two", pytrace=False)
    for node in sources:
        got, res = _dial(workload, workload.pod(node), ip, 80)
        if got != [TARGET]:
            workload.fail(
                f"the pod on {node} did not reach Service {TARGET} ({ip}:80, backend on {target_node}); got {got}",
                res,
                workload.pod(node),
            )


def test_cluster_ip_from_every_node(workload: Workload, node: str) -> None:
    ip = workload.service["spec"]["clusterIP"]
    res = workload.sh(f"curl -s --max-time 10 http://{ip}:80/hostname", host=node)
    if res.rc != 0 or res.stdout.strip() != TARGET:
        workload.fail(f"node {node} itself did not reach Service {TARGET} at {ip}:80", res, TARGET)


def test_node_port_on_every_node(workload: Workload, node: str) -> None:
    """The NodePort answers on `node`'s InternalIP, asked from the control-plane host."""
    port = workload.service["spec"]["ports"][0]["nodePort"]
    nodeobj = _json(workload.kubectl(f"get node {node} -o json")) or {}
    addresses = [a["address"] for a in nodeobj.get("status", {}).get("addresses", []) if a["type"] == "InternalIP"]
    if not addresses:
        workload.fail(f"node {node} has no InternalIP address")
    res = workload.sh(f"curl -s --max-time 10 http://{addresses[0]}:{port}/hostname")
    if res.rc != 0 or res.stdout.strip() != TARGET:
        workload.fail(f"NodePort {port} on {node} ({addresses[0]}) did not answer {TARGET!r}", res, TARGET)


def _lookup(workload: Workload, pod: str, name: str) -> tuple[list[str], Result]:
    res = workload.pod_proxy(pod, "/shell", shellCommand=f"nslookup {name}")
    output = (_json(res) or {}).get("output", "")
    # busybox: "Name:\t<name>\nAddress: <ip>" per answer (the server's own lines come first, without Name:)
    answers = re.findall(r"^Name:\s*\S+\s*\nAddress:\s*([0-9a-fA-F.:]+)", output, re.M)
    return answers, res


def test_dns_from_every_node(workload: Workload, node: str) -> None:
    pod = workload.pod(node)
    configz = (_json(workload.raw(f"/api/v1/nodes/{node}/proxy/configz")) or {}).get("kubeletconfig", {})
    domain = configz.get("clusterDomain") or "cluster.local"
    kubernetes_ip = (_json(workload.kubectl("-n default get service kubernetes -o json")) or {})["spec"]["clusterIP"]
    for name, want in (
        (f"kubernetes.default.svc.{domain}", kubernetes_ip),
        (f"{TARGET}.{workload.namespace}.svc.{domain}", workload.service["spec"]["clusterIP"]),
    ):
        got, res = _lookup(workload, pod, name)
        if want not in got:
            workload.fail(f"CoreDNS from {pod} on {node}: {name} resolved to {got}, not {want}", res, pod)


# --------------------------------------------------------------------------- the kubelet as configured


def test_kubelet_configz(workload: Workload, node: str) -> None:
    """The running kubelet's configuration (not the file): ports, static pod path, cgroup driver."""
    cluster = workload.cluster
    res = workload.raw(f"/api/v1/nodes/{node}/proxy/configz")
    config = (_json(res) or {}).get("kubeletconfig")
    if not config:
        workload.fail(f"/configz of {node} through the API server's node proxy gave no kubeletconfig", res)
    driver = cluster.host(node).run("docker info --format '{{.CgroupDriver}}'").stdout.strip()
    want = {
        "readOnlyPort": int(cluster.var("cluster_kubelet_read_only_port", node)),
        "healthzPort": int(cluster.var("cluster_kubelet_healthz_port", node)),
        "staticPodPath": cluster.var("cluster_kubelet_static_pod_path", node),
        "cgroupDriver": driver,
    }
    got = {key: config.get(key, 0 if key == "readOnlyPort" else None) for key in want}
    assert got == want, f"/configz of {node}: {got}, the inventory and Docker say {want}"


def test_static_pod_on_worker(workload: Workload, worker: str) -> None:
    """A manifest dropped into the worker's staticPodPath runs as a mirror pod, and goes with its file."""
    cluster = workload.cluster
    path = cluster.var("cluster_kubelet_static_pod_path", worker)
    name = f"{STATIC}-{secrets.token_hex(2)}"
    mirror = f"{name}-{worker}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": workload.namespace},
        "spec": {"containers": [{"name": "pause", "image": workload.image, "imagePullPolicy": "Never"}]},
    }
    file = f"{path}/{name}.yaml"
    wrote = workload.sh(f"echo {shlex.quote(json.dumps(pod))} >{file}", host=worker)
    if wrote.rc != 0:
        workload.fail(f"could not write {file} on {worker}", wrote)
    ns = workload.namespace

    def mirrored() -> tuple[bool, Result]:
        res = workload.kubectl(f"-n {ns} get pod {mirror} -o json")
        data = _json(res) or {}
        return _ready(data) and "kubernetes.io/config.mirror" in data["metadata"].get("annotations", {}), res

    def gone() -> tuple[bool, Result]:
        res = workload.kubectl(f"-n {ns} get pod {mirror} --ignore-not-found -o name")
        return res.rc == 0 and not res.stdout.strip(), res

    try:
        workload.wait(f"a Ready mirror pod {mirror} after writing {file} on {worker}", mirrored, 120, pod=mirror)
    finally:
        workload.sh(f"rm -f {file}", host=worker)
    workload.wait(f"mirror pod {mirror} gone after removing {file} from {worker}", gone, 120, pod=mirror)
