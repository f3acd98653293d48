"""RSS of the release controller across configuration changes against the real API server.

With N Ingresses x 10 paths present (each with a Service and an EndpointSlice of its own, one in
ten with a TLS Secret), runs ROUNDS rounds of five phases of CHANGES changes each: Ingress
create then delete, Ingress update (its Service swapped), EndpointSlice update, TLS Secret
update (another certificate), Service create then delete; each change is followed by requests
through the proxy (HTTP, or HTTPS for the Secret). A last phase per round creates BATCH
Ingresses (each taking requests, so each has its request series) and deletes them again.
Prints RSS after start and after each phase. Driven by benches/steady/run.sh.
"""
import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time

env = dict(line.strip().split("=", 1) for line in open(os.environ["FERRY_APISERVER_ENV"]) if "=" in line)
N = int(os.environ.get("N", "10000"))
CHANGES = int(os.environ.get("CHANGES", "500"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
BATCH = int(os.environ.get("BATCH", "500"))
CERTS = os.environ["CERTS"]
BIN = os.environ["FERRY_CONTROLLER_BIN"]

api_ctx = ssl.create_default_context(cafile=env["FERRY_APISERVER_CA"])
url = env["FERRY_APISERVER_URL"].removeprefix("https://")
api_host, api_port = url.rsplit(":", 1)
conn = http.client.HTTPSConnection(api_host, int(api_port), context=api_ctx)
token = env["FERRY_ADMIN_TOKEN"]


def call(method, path, body=None, ctype="application/json"):
    headers = {"Authorization": "Bearer " + token, "Content-Type": ctype}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return data


ns = f"steady-{os.getpid()}"
A = f"/api/v1/namespaces/{ns}"
NET = f"/apis/networking.k8s.io/v1/namespaces/{ns}"
DISC = f"/apis/discovery.k8s.io/v1beta1/namespaces/{ns}"
MERGE = "application/merge-patch+json"


def service(name):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def endpoints(ip):
    return [{"addresses": [ip], "conditions": {"ready": True}}]


def endpoint_slice(name, svc, ip):
    return {"apiVersion": "discovery.k8s.io/v1beta1", "kind": "EndpointSlice",
            "metadata": {"name": name, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 9, "protocol": "TCP"}],
            "endpoints": endpoints(ip)}


def rules(host, svc, paths=1):
    backend = {"service": {"name": svc, "port": {"number": 80}}}
    return [{"host": host, "http": {"paths": [
        {"path": "/" if j == 0 else f"/p{j}", "pathType": "Prefix", "backend": backend} for j in range(paths)]}}]


def ingress(name, host, svc, secret=None, paths=1):
    spec = {"ingressClassName": ns, "rules": rules(host, svc, paths)}
    if secret:
        spec["tls"] = [{"hosts": [host], "secretName": secret}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name}, "spec": spec}


def tls_secret(name, which):
    pem = lambda ext: base64.b64encode(open(f"{CERTS}/{which}.{ext}", "rb").read()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": "kubernetes.io/tls",
            "data": {"tls.crt": pem("crt"), "tls.key": pem("key")}}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


http_port, https_port, admin_port = free_port(), free_port(), free_port()
client_tls = ssl.create_default_context()
client_tls.check_hostname = False
client_tls.verify_mode = ssl.CERT_NONE


def request(host, tls=False, port=None, path="/"):
    """One request on a new connection; the status."""
    s = socket.create_connection(("127.0.0.1", port or (https_port if tls else http_port)), timeout=10)
    if tls:
        s = client_tls.wrap_socket(s, server_hostname=host)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0


def poke(host, tls=False):
    for _ in range(3):
        request(host, tls)


call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
call("POST", "/apis/networking.k8s.io/v1/ingressclasses",
     {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": ns},
      "spec": {"controller": "ferry.dev/ingress-controller"}})
written = time.time()
for name in ["app", "app-b"]:
    call("POST", A + "/services", service(name))
call("POST", DISC + "/endpointslices", endpoint_slice("app-1", "app", "127.0.0.2"))
call("POST", A + "/secrets", tls_secret("probe-tls", "one"))
call("POST", NET + "/ingresses", ingress("fixed", "fixed.example.com", "app"))
call("POST", NET + "/ingresses", ingress("tls-probe", "tls-probe.example.com", "app", "probe-tls"))
for i in range(N):
    secret = f"tls-{i}" if i % 10 == 0 else None
    if secret:
        call("POST", A + "/secrets", tls_secret(secret, "one"))
    call("POST", A + "/services", service(f"web-{i}"))
    call("POST", DISC + "/endpointslices", endpoint_slice(f"web-{i}-1", f"web-{i}", "127.0.0.2"))
    call("POST", NET + "/ingresses", ingress(f"bulk-{i}", f"bulk-{i}.example.com", f"web-{i}", secret, paths=10))
written = time.time() - written

controller = subprocess.Popen(
    [BIN, "--kubeconfig", env["FERRY_KUBECONFIG"], "--ingress-class", ns, "--watch-namespace", ns,
     "--pod-namespace", ns, "--pod-name", "steady", "--election-id", "steady-" + ns,
     "--update-status", "false", "--access-log", "off", "--http-port", str(http_port),
     "--https-port", str(https_port), "--admin-port", str(admin_port)],
    stdout=open(os.environ.get("LOG", "/dev/null"), "w"), stderr=subprocess.STDOUT)


def rss():
    for line in open(f"/proc/{controller.pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return 0.0


def until(done, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if done():
                return
        except OSError:
            pass
        time.sleep(0.05)
    controller.kill()
    raise SystemExit("the controller did not get there in time")


# Every Ingress routed (the last one's endpoint listens nowhere: 502, not 404).
until(lambda: request(f"bulk-{N - 1}.example.com") not in (0, 404))
time.sleep(2)
start = rss()
print(f"{N} Ingresses x 10 paths, {N} Services and EndpointSlices, {(N + 9) // 10} TLS Secrets "
      f"(written in {written:.0f} s); RSS after start {start:.1f} MiB", flush=True)

changes = 0


def phase(name, k):
    global changes
    for i in range(CHANGES):
        if name == "Ingress create, delete":
            host = f"p-{k}-{i}.example.com"
            if i % 2 == 0:
                call("POST", NET + "/ingresses", ingress(f"p-{k}-{i}", host, "app"))
            else:
                call("DELETE", NET + f"/ingresses/p-{k}-{i - 1}")
                host = f"p-{k}-{i - 1}.example.com"
            poke(host)
        elif name == "Ingress update":
            call("PATCH", NET + "/ingresses/fixed", {"spec": {"rules": rules("fixed.example.com", ["app-b", "app"][i % 2])}}, MERGE)
            poke("fixed.example.com")
        elif name == "EndpointSlice update":
            call("PATCH", DISC + "/endpointslices/app-1", {"endpoints": endpoints(["127.0.0.3", "127.0.0.2"][i % 2])}, MERGE)
            poke("fixed.example.com")
        elif name == "TLS Secret update":
            call("PUT", A + "/secrets/probe-tls", tls_secret("probe-tls", ["two", "one"][i % 2]))
            poke("tls-probe.example.com", tls=True)
        elif name == "Service create, delete":
            if i % 2 == 0:
                call("POST", A + "/services", service(f"s-{k}-{i}"))
            else:
                call("DELETE", A + f"/services/s-{k}-{i - 1}")
            poke("fixed.example.com")
        changes += 1


def batch(k):
    global changes
    for i in range(BATCH):
        call("POST", NET + "/ingresses", ingress(f"b-{k}-{i}", f"b-{k}-{i}.example.com", "app"))
    for i in range(BATCH):
        until(lambda: request(f"b-{k}-{i}.example.com") != 404)
        poke(f"b-{k}-{i}.example.com")
    time.sleep(1)
    high = rss()
    for i in range(BATCH):
        call("DELETE", NET + f"/ingresses/b-{k}-{i}")
    changes += 2 * BATCH
    return high


phases = ["Ingress create, delete", "Ingress update", "EndpointSlice update", "TLS Secret update", "Service create, delete"]
steady, highs = [], []
for k in range(ROUNDS):
    for name in phases:
        phase(name, k)
        time.sleep(1)
        print(f"  round {k + 1}: {CHANGES} x {name:<24} RSS {rss():6.1f} MiB", flush=True)
    steady.append(rss())
    if BATCH:
        highs.append(batch(k))
        until(lambda: request(f"b-{k}-{BATCH - 1}.example.com") == 404)
        time.sleep(1)
        print(f"  round {k + 1}: {BATCH} Ingresses made, requested, deleted: RSS {highs[-1]:6.1f} MiB with them, "
              f"{rss():6.1f} right after", flush=True)
print(f"{changes} changes in all. RSS after start {start:.1f} MiB; after each round's {len(phases)} x {CHANGES} "
      f"changes: " + ", ".join(f"{r:.1f}" for r in steady)
      + (f"; with each round's {BATCH} extra Ingresses: " + ", ".join(f"{r:.1f}" for r in highs) if BATCH else "")
      + f"; growth from round 2 to {ROUNDS} (after the first extra Ingresses came and went): "
      + (f"{steady[-1] - steady[1]:+.1f} MiB" if ROUNDS > 2 else "n/a"),
      flush=True)
controller.terminate()
controller.wait()
call("DELETE", f"/api/v1/namespaces/{ns}")
call("DELETE", f"/apis/networking.k8s.io/v1/ingressclasses/{ns}")
