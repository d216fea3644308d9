#!/usr/bin/python3
# ruff: noqa: E501
# Vendored from the node reference beside the k8s binaries (../shared/k8s), ruff-formatted.
"""Minimal cluster DNS for the local single-node Kubernetes (stand-in for CoreDNS, which is not
packaged in Debian).  Serves the Kubernetes DNS schema for <zone> (default cluster.local) from a
list+watch of Services and EndpointSlices, over UDP and TCP.  Needs only Debian's python3-dnslib.

Answers (https://github.com/kubernetes/dns/blob/master/docs/specification.md, the commonly used part):
  <svc>.<ns>.svc.<zone>            A/AAAA  ClusterIP(s); headless: IPs of ready endpoints
                                           (all endpoints if publishNotReadyAddresses); ExternalName: CNAME
  <host>.<svc>.<ns>.svc.<zone>     A/AAAA  headless endpoint with hostname (StatefulSet pods) or a-b-c-d IP form
  _<port>._<proto>.<svc>.<ns>.svc.<zone>  SRV  named ports
  <a-b-c-d>.<ns>.pod.<zone>        A       any IPv4 (like CoreDNS "pods insecure")
  reverse PTR                              ClusterIPs and headless endpoint IPs
  <zone> SOA/NS, empty non-terminals (ns.svc.<zone>, svc.<zone>) -> NODATA, unknown names -> NXDOMAIN.
Other names: forwarded to --upstream if given, else REFUSED (default: nothing leaves the machine).

Limits: no DNSSEC, no wildcard queries, no caching of upstream answers, no EDNS handling beyond what
dnslib does, no autopath, answers are built per query from in-memory maps (fine for test clusters).
"""

import argparse
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request

from dnslib import AAAA, CNAME, NS, PTR, QTYPE, RCODE, RR, SOA, SRV, A, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

log = logging.getLogger("k8s-dns")


class Store:
    """Services and EndpointSlices kept in sync with the API (list, then watch; relist on error/410)."""

    def __init__(self, server, ctx):
        self.server, self.ctx = server.rstrip("/"), ctx
        self.lock = threading.Lock()
        self.svcs = {}  # (ns, name) -> Service object
        self.slices = {}  # (ns, slice name) -> EndpointSlice object
        self.synced = {"services": threading.Event(), "endpointslices": threading.Event()}

    def _get(self, path, timeout):
        return urllib.request.urlopen(
            urllib.request.Request(self.server + path, headers={"Accept": "application/json"}),
            context=self.ctx,
            timeout=timeout,
        )

    def run(self, kind, path):
        target = self.svcs if kind == "services" else self.slices
        while True:
            try:
                with self._get(path + "?limit=0", 30) as r:
                    lst = json.load(r)
                with self.lock:
                    target.clear()
                    for o in lst.get("items") or []:
                        target[(o["metadata"]["namespace"], o["metadata"]["name"])] = o
                rv = lst["metadata"]["resourceVersion"]
                self.synced[kind].set()
                log.info("listed %d %s at rv %s", len(target), kind, rv)
                while True:
                    q = urllib.parse.urlencode(
                        {
                            "watch": "1",
                            "resourceVersion": rv,
                            "allowWatchBookmarks": "true",
                            "timeoutSeconds": "300",
                        }
                    )
                    with self._get(f"{path}?{q}", 330) as r:
                        for line in r:
                            ev = json.loads(line)
                            t, o = ev["type"], ev["object"]
                            if t == "ERROR":
                                raise RuntimeError(f"watch error: {o.get('message')}")
                            rv = o["metadata"]["resourceVersion"]
                            if t == "BOOKMARK":
                                continue
                            key = (o["metadata"]["namespace"], o["metadata"]["name"])
                            with self.lock:
                                if t == "DELETED":
                                    target.pop(key, None)
                                else:
                                    target[key] = o
            except Exception as e:
                log.warning("%s: %s; relisting in 1s", kind, e)
                time.sleep(1)

    # ---- lookups (called with self.lock held)
    def service(self, ns, name):
        return self.svcs.get((ns, name))

    def endpoints(self, ns, svc, publish_not_ready):
        """[(ip, hostname, {portname/proto: port})] of the service's endpoints."""
        out = []
        for (sns, _), sl in self.slices.items():
            if (
                sns != ns
                or (sl["metadata"].get("labels") or {}).get("kubernetes.io/service-name") != svc
            ):
                continue
            ports = {
                (p.get("name") or "", p.get("protocol", "TCP")): p.get("port")
                for p in sl.get("ports") or []
            }
            for ep in sl.get("endpoints") or []:
                ready = (ep.get("conditions") or {}).get("ready") is not False
                if not ready and not publish_not_ready:
                    continue
                for ip in ep.get("addresses") or []:
                    out.append((ip, ep.get("hostname"), ports))
        return out

    def namespaces(self):
        return {ns for ns, _ in self.svcs}


def dashed(ip):
    return ip.replace(".", "-").replace(":", "-")


class Resolver(BaseResolver):
    def __init__(self, store, zone, ttl, upstream):
        self.store, self.zone, self.ttl, self.upstream = (
            store,
            zone.strip(".").lower(),
            ttl,
            upstream,
        )
        self.zl = self.zone.split(".")

    def _soa(self):
        return RR(
            self.zone + ".",
            QTYPE.SOA,
            ttl=self.ttl,
            rdata=SOA(
                "ns.dns." + self.zone + ".",
                "hostmaster." + self.zone + ".",
                (int(time.time()) % 2**32, 7200, 1800, 86400, self.ttl),
            ),
        )

    def resolve(self, request, handler):
        reply = request.reply()
        q = request.q
        qname = str(q.qname).rstrip(".").lower()
        labels = qname.split(".") if qname else []
        if labels[-len(self.zl) :] == self.zl:
            rrs = self.lookup(labels[: -len(self.zl)], q.qtype)
            if rrs is None:
                reply.header.rcode = RCODE.NXDOMAIN
                reply.add_auth(self._soa())
            elif not rrs:
                reply.add_auth(self._soa())
            else:
                for rr in rrs:
                    reply.add_answer(rr)
            return reply
        if qname.endswith(".in-addr.arpa") or qname.endswith(".ip6.arpa"):
            names = self.reverse(qname)
            if names:
                for n in names:
                    reply.add_answer(RR(str(q.qname), QTYPE.PTR, ttl=self.ttl, rdata=PTR(n + ".")))
                return reply
        if self.upstream:
            try:
                host, port = self.upstream.rsplit(":", 1)
                return DNSRecord.parse(request.send(host, int(port), timeout=3))
            except Exception as e:
                log.warning("upstream %s failed for %s: %s", self.upstream, qname, e)
                reply.header.rcode = RCODE.SERVFAIL
                return reply
        reply.header.rcode = RCODE.REFUSED
        return reply

    def addr_rrs(self, name, ips, qtype):
        rrs = []
        for ip in ips:
            v6 = ":" in ip
            if qtype in (QTYPE.A, QTYPE.ANY) and not v6:
                rrs.append(RR(name, QTYPE.A, ttl=self.ttl, rdata=A(ip)))
            if qtype in (QTYPE.AAAA, QTYPE.ANY) and v6:
                rrs.append(RR(name, QTYPE.AAAA, ttl=self.ttl, rdata=AAAA(ip)))
        return rrs

    def lookup(self, rel, qtype):
        """rel = labels below the zone.  Returns None for NXDOMAIN, [] for NODATA, else RRs."""
        fq = ".".join(rel + self.zl) + "."
        s = self.store
        if not rel:
            if qtype == QTYPE.SOA:
                return [self._soa()]
            if qtype == QTYPE.NS:
                return [RR(fq, QTYPE.NS, ttl=self.ttl, rdata=NS("ns.dns." + self.zone + "."))]
            return []
        with s.lock:
            if rel[-1] == "svc":
                if len(rel) == 1:
                    return []
                ns = rel[-2]
                if len(rel) == 2:
                    return [] if ns in s.namespaces() else None
                svc = s.service(ns, rel[-3])
                if svc is None:
                    return None
                spec = svc.get("spec") or {}
                pnr = bool(spec.get("publishNotReadyAddresses"))
                headless = spec.get("clusterIP") == "None"
                base = f"{rel[-3]}.{ns}.svc.{self.zone}."
                if len(rel) == 3:  # <svc>.<ns>.svc
                    if spec.get("type") == "ExternalName":
                        if qtype in (QTYPE.A, QTYPE.AAAA, QTYPE.CNAME, QTYPE.ANY):
                            return [
                                RR(
                                    fq,
                                    QTYPE.CNAME,
                                    ttl=self.ttl,
                                    rdata=CNAME(spec.get("externalName", "") + "."),
                                )
                            ]
                        return []
                    if headless:
                        ips = [ip for ip, _, _ in s.endpoints(ns, rel[-3], pnr)]
                    else:
                        ips = [
                            ip
                            for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")])
                            if ip and ip != "None"
                        ]
                    return self.addr_rrs(fq, ips, qtype)
                if len(rel) == 4:  # <endpoint hostname or dashed ip>.<svc>.<ns>.svc (headless only)
                    if not headless:
                        return None
                    ips = [
                        ip
                        for ip, host, _ in s.endpoints(ns, rel[-3], pnr)
                        if rel[0] in (host, dashed(ip))
                    ]
                    return self.addr_rrs(fq, ips, qtype) if ips else None
                if (
                    len(rel) == 5 and rel[0].startswith("_") and rel[1].startswith("_")
                ):  # _port._proto.<svc>
                    pname, proto = rel[0][1:], rel[1][1:].upper()
                    ports = [
                        p
                        for p in spec.get("ports") or []
                        if (p.get("name") or "") == pname and p.get("protocol", "TCP") == proto
                    ]
                    if not ports:
                        return None
                    if qtype not in (QTYPE.SRV, QTYPE.ANY):
                        return []
                    rrs = []
                    if headless:
                        for ip, host, eports in s.endpoints(ns, rel[-3], pnr):
                            port = eports.get((pname, proto))
                            if port:
                                rrs.append(
                                    RR(
                                        fq,
                                        QTYPE.SRV,
                                        ttl=self.ttl,
                                        rdata=SRV(0, 100, port, f"{host or dashed(ip)}.{base}"),
                                    )
                                )
                    else:
                        rrs.append(
                            RR(
                                fq,
                                QTYPE.SRV,
                                ttl=self.ttl,
                                rdata=SRV(0, 100, ports[0]["port"], base),
                            )
                        )
                    return rrs
                return None
            if rel[-1] == "pod":
                if len(rel) == 1:
                    return []
                if len(rel) == 2:
                    return []  # <ns>.pod: any namespace, empty non-terminal
                if len(rel) == 3:
                    try:
                        ip = str(ipaddress.IPv4Address(rel[0].replace("-", ".")))
                    except ValueError:
                        return None
                    return self.addr_rrs(fq, [ip], qtype)
                return None
        return None

    def reverse(self, qname):
        try:
            if qname.endswith(".in-addr.arpa"):
                ip = ".".join(reversed(qname[: -len(".in-addr.arpa")].split(".")))
                ip = str(ipaddress.IPv4Address(ip))
            else:
                nib = qname[: -len(".ip6.arpa")].split(".")
                ip = str(ipaddress.IPv6Address(bytes.fromhex("".join(reversed(nib)))))
        except ValueError:
            return []
        out = []
        s = self.store
        with s.lock:
            for (ns, name), svc in s.svcs.items():
                spec = svc.get("spec") or {}
                if ip in (spec.get("clusterIPs") or []):
                    out.append(f"{name}.{ns}.svc.{self.zone}")
                elif spec.get("clusterIP") == "None":
                    for eip, host, _ in s.endpoints(
                        ns, name, bool(spec.get("publishNotReadyAddresses"))
                    ):
                        if eip == ip:
                            out.append(f"{host or dashed(eip)}.{name}.{ns}.svc.{self.zone}")
        return out


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--server", required=True, help="https://127.0.0.1:6443")
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--listen", default="127.0.0.1:53", help="IP:PORT for UDP and TCP")
    ap.add_argument("--zone", default="cluster.local")
    ap.add_argument("--ttl", type=int, default=5)
    ap.add_argument(
        "--upstream", default="", help="IP:PORT to forward non-cluster names to (default: none)"
    )
    ap.add_argument("--log-queries", action="store_true")
    a = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    ctx = ssl.create_default_context(cafile=a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    store = Store(a.server, ctx)
    for kind, path in (
        ("services", "/api/v1/services"),
        ("endpointslices", "/apis/discovery.k8s.io/v1/endpointslices"),
    ):
        threading.Thread(target=store.run, args=(kind, path), daemon=True, name=kind).start()
    for ev in (
        store.synced.values()
    ):  # serve only once both caches are filled (like CoreDNS's initial sync)
        ev.wait()

    host, port = a.listen.rsplit(":", 1)
    dlog = DNSLogger("request,reply,truncated,error" if a.log_queries else "error", prefix=False)
    resolver = Resolver(store, a.zone, a.ttl, a.upstream)
    servers = [
        DNSServer(resolver, address=host, port=int(port), tcp=tcp, logger=dlog)
        for tcp in (False, True)
    ]
    for srv in servers:
        srv.start_thread()
    log.info(
        "serving %s on %s (udp+tcp), upstream=%s", a.zone, a.listen, a.upstream or "none (REFUSED)"
    )
    while all(srv.isAlive() for srv in servers):
        time.sleep(2)
    log.error("a DNS server thread died; exiting")
    raise SystemExit(1)


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    main()
