package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.FrameTool;
import ch.ungleich.uncloud.tests.lab.InboundProbes;
import ch.ungleich.uncloud.tests.lab.NetnsLab;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Issue 17 with real connections across a real bridge: the delivery filter and the stateful
 * uc:ingress / uc:egress rules of the nft backend, installed by the hook as libvirt calls it.
 *
 * <pre>
 *   vm1 (vnet0) A: 192.0.2.11 2001:db8::11   uc:ingress: tcp 80; tcp 22 from 198.51.100.0/24 and
 *                                             2001:db8:1::/48; udp 53; icmp; icmpv6
 *   vm2 (vnet1) B: 192.0.2.12 2001:db8::12   empty uc:ingress; uc:egress: tcp 8080 to 192.0.2.13
 *   vm3 (vnet2) C: trusted (no filtering): 192.0.2.13 198.51.100.13 2001:db8::13 2001:db8:1::13
 *   inj (uplink1): an outside host, 192.0.2.14 2001:db8::14
 * </pre>
 *
 * <p>bridge-nf-call-ip(6)tables are on in the hypervisor namespace (the path this kernel has:
 * br_netfilter, conntrack in the inet table). Every "FAIL" below is next to an "OK" of the same
 * listener, so a test cannot pass because nothing works.
 */
class InboundLabTest {
  static final String PY = FrameTool.PYTHON;
  static final String A4 = "192.0.2.11";
  static final String A6 = "2001:db8::11";
  static final String B4 = "192.0.2.12";
  static final String B6 = "2001:db8::12";
  static final String C4 = "192.0.2.13";
  static final String C4X = "198.51.100.13";
  static final String C6 = "2001:db8::13";
  static final String C6X = "2001:db8:1::13";
  static final String I4 = "192.0.2.14";
  static final String I6 = "2001:db8::14";

  static NetnsLab lab;
  static InboundProbes io;
  static NetnsLab.Port vm1;
  static NetnsLab.Port vm2;
  static NetnsLab.Port vm3;
  static NetnsLab.Port inj;

  static final String RULES_A =
      "<uc:ingress>"
          + "<uc:allow protocol='tcp' port='80'/>"
          + "<uc:allow protocol='tcp' port='22' from='198.51.100.0/24'/>"
          + "<uc:allow protocol='tcp' port='22' from='2001:db8:1::/48'/>"
          + "<uc:allow protocol='udp' port='53'/>"
          + "<uc:allow protocol='icmp'/>"
          + "<uc:allow protocol='icmpv6'/>"
          + "</uc:ingress>";
  static final String RULES_B =
      "<uc:ingress/><uc:egress><uc:allow protocol='tcp' port='8080' to='192.0.2.13'/></uc:egress>";

  @BeforeAll
  static void build() {
    lab = NetnsLab.create("in", 3);
    io = new InboundProbes(lab);
    vm1 = lab.vm(0);
    vm2 = lab.vm(1);
    vm3 = lab.vm(2);
    inj = lab.injector();
    // the path this kernel offers: bridged IP through the inet hooks (NetnsLab turns it off)
    sysctl(1);
    addr(vm1, A4 + "/24", A6 + "/64");
    addr(vm2, B4 + "/24", B6 + "/64");
    addr(vm3, C4 + "/24", C4X + "/24", C6 + "/64", C6X + "/48");
    addr(inj, I4 + "/24", I6 + "/64");
    // A answers the 198.51.100.0/24 and 2001:db8:1::/48 clients on the link
    lab.exec(vm1.netns(), "ip", "route", "add", "198.51.100.0/24", "dev", "eth0").ok();
    lab.exec(vm1.netns(), "ip", "-6", "route", "add", "2001:db8:1::/48", "dev", "eth0").ok();
    listen(vm1, A4, A6, "22,23,80", "53,54");
    listen(vm2, B4, B6, "8080", "68");
    listen(vm3, "0.0.0.0", "::", "8080,9090", "");
    listen(inj, I4, I6, "8080", "");
    lab.mustSucceed(lab.hook("dom-c", "start", "begin", "-", domain("dom-c", vm3, "", true, C4, C4X, C6, C6X)));
  }

  @AfterAll
  static void close() {
    if (io != null) {
      io.close();
    }
    if (lab != null) {
      lab.close();
    }
  }

  // ------------------------------------------------------------------ tests

  @Test
  void ingressAllowsAndDropsRealConnections() {
    // A without rules first: port 23 answers, so the later FAIL is the filter's doing
    start("dom-a", vm1, "", A4, A6);
    assertEquals("OK", tcp(vm3, C4, A4, 23));
    start("dom-a", vm1, RULES_A, A4, A6);
    String r = lab.ruleset();
    assertEquals("OK", tcp(vm3, C4, A4, 80), r);
    assertEquals("OK", tcp(vm3, C6, A6, 80), r);
    assertEquals("FAIL TimeoutError", tcp(vm3, C4, A4, 23), r);
    assertEquals("FAIL TimeoutError", tcp(vm3, C6, A6, 23), r);
    // from-prefix, IPv4 and IPv6
    assertEquals("OK", tcp(vm3, C4X, A4, 22), r);
    assertEquals("FAIL TimeoutError", tcp(vm3, C4, A4, 22), r);
    assertEquals("OK", tcp(vm3, C6X, A6, 22), r);
    assertEquals("FAIL TimeoutError", tcp(vm3, C6, A6, 22), r);
    // UDP and ICMP / ICMPv6
    assertEquals("OK", udp(vm3, C4, 40053, A4, 53), r);
    assertEquals("FAIL TimeoutError", udp(vm3, C4, 40054, A4, 54), r);
    assertEquals("OK", udp(inj, I6, 40053, A6, 53), r);
    assertEquals("OK", ping(vm3, C4, A4), r);
    assertEquals("OK", ping(vm3, C6, A6), r);
    // the VM's own connections get their replies (no uc:egress on A)
    assertEquals("OK", tcp(vm1, A4, I4, 8080), r);
    assertEquals("OK", tcp(vm1, A6, I6, 8080), r);
  }

  @Test
  void emptyIngressOnlyRepliesAndEgressAllows() {
    start("dom-b", vm2, RULES_B, B4, B6);
    String r = lab.ruleset();
    // unsolicited inbound dropped, while B itself may open the allowed connection and gets its replies
    assertEquals("FAIL TimeoutError", tcp(vm3, C4, B4, 8080), r);
    assertEquals("FAIL TimeoutError", tcp(vm3, C6, B6, 8080), r);
    assertEquals("FAIL TimeoutError", ping(vm3, C4, B4), r);
    assertEquals("OK", tcp(vm2, B4, C4, 8080), r); // needs ARP both ways under the empty uc:ingress
    // egress: other port, other destination, IPv6 (no IPv6 allow) dropped
    assertEquals("FAIL TimeoutError", tcp(vm2, B4, C4, 9090), r);
    assertEquals("FAIL TimeoutError", tcp(vm2, B4, I4, 8080), r);
    assertEquals("FAIL TimeoutError", tcp(vm2, B6, C6, 8080), r);
    // DHCPv4 server answer to the client port, and the client's packet back: always allowed
    assertEquals("OK", udp(inj, I4, 67, B4, 68), r);
    // NDP under the empty uc:ingress: C learns B's link-layer address (neighbor solicitation answered)
    lab.exec(vm3.netns(), "ip", "-6", "neigh", "flush", "dev", "eth0").ok();
    ping(vm3, C6, B6); // the echo itself is dropped; the NS before it is not
    String neigh = lab.exec(vm3.netns(), "ip", "-6", "neigh", "show", B6).ok().out();
    assertTrue(neigh.contains(vm2.mac()), "NDP to B under an empty uc:ingress: " + neigh);
  }

  @Test
  void deliveryFilterAfterTheFdbIsFlushed() throws Exception {
    start("dom-a", vm1, "", A4, A6);
    start("dom-b", vm2, RULES_B, B4, B6);
    // no learning: every unicast frame is flooded to every port, as after an FDB entry aged out
    lab.exec(lab.hv(), "ip", "link", "set", NetnsLab.BRIDGE, "type", "bridge", "ageing_time", "0").ok();
    lab.exec(lab.hv(), "bridge", "fdb", "flush", "dev", NetnsLab.BRIDGE).ok();
    try {
      Map<String, Boolean> seen = flood(vm1.mac(), A4, 5000);
      assertTrue(seen.get("vm1"), "the addressed VM receives it: " + seen);
      assertTrue(seen.get("vm3"), "the bridge did flood it (vm3 is trusted, no delivery filter): " + seen);
      assertTrue(!seen.get("vm2"), "another filtered VM never sees it: " + seen + "\n" + lab.ruleset());
      // a frame for an address A's rules approve (udp 53), sent to B's MAC: never delivered to B
      start("dom-a", vm1, RULES_A, A4, A6);
      seen = flood(vm2.mac(), A4, 53);
      assertTrue(!seen.get("vm2"), "approved for A, not delivered to B's port: " + seen + "\n" + lab.ruleset());
      assertTrue(seen.get("vm3"), "flooded: " + seen);
      seen = flood(vm1.mac(), A4, 53);
      assertTrue(seen.get("vm1"), "the same frame to A's MAC reaches A: " + seen);
    } finally {
      lab.exec(lab.hv(), "ip", "link", "set", NetnsLab.BRIDGE, "type", "bridge", "ageing_time", "30000").ok();
    }
  }

  @Test
  void withoutBridgeNetfilterIngressFailsClosed() {
    start("dom-a", vm1, RULES_A, A4, A6);
    assertEquals("OK", tcp(vm3, C4, A4, 80));
    sysctl(0);
    try {
      assertEquals("FAIL TimeoutError", tcp(vm3, C4, A4, 80), lab.ruleset());
    } finally {
      sysctl(1);
    }
    assertEquals("OK", tcp(vm3, C4, A4, 80));
  }

  @Test
  void flushedRulesetComesBackWithReconnect() {
    start("dom-a", vm1, RULES_A, A4, A6);
    assertEquals("FAIL TimeoutError", tcp(vm3, C4, A4, 23));
    lab.exec(lab.hv(), "nft", "flush", "ruleset").ok();
    lab.mustSucceed(lab.hook("dom-c", "reconnect", "begin", "-", domain("dom-c", vm3, "", true, C4, C4X, C6, C6X)));
    lab.mustSucceed(lab.hook("dom-a", "reconnect", "begin", "-", domain("dom-a", vm1, RULES_A, false, A4, A6)));
    String r = lab.ruleset();
    assertTrue(r.contains("table inet uncloud-inbound") && r.contains("192.0.2.11 . tcp . 80"), r);
    assertEquals("FAIL TimeoutError", tcp(vm3, C4, A4, 23), r);
    assertEquals("OK", tcp(vm3, C4, A4, 80), r);
  }

  @Test
  void stopRemovesEveryElement() {
    start("dom-b", vm2, RULES_B, B4, B6);
    assertTrue(lab.ruleset().contains("192.0.2.12 . tcp . 8080 . 192.0.2.13"), lab.ruleset());
    lab.mustSucceed(lab.hook("dom-b", "stopped", "end", "-", domain("dom-b", vm2, RULES_B, false, B4, B6)
        .replaceAll("<target dev='[^']*'/>", "")));
    String r = lab.ruleset();
    assertTrue(!r.contains("192.0.2.12") && !r.contains("\"vnet1\""), r);
    start("dom-b", vm2, RULES_B, B4, B6);
  }

  // ------------------------------------------------------------------ helpers

  /** Sends one UDP frame from the injector to {@code dstMac}; which VMs' eth0 saw it. */
  static Map<String, Boolean> flood(String dstMac, String dstIp, int port) throws Exception {
    String nonce = "uc17-" + UUID.randomUUID();
    Map<String, Process> caps = new LinkedHashMap<>();
    for (NetnsLab.Port p : List.of(vm1, vm2, vm3)) {
      Process c = new ProcessBuilder("ip", "netns", "exec", p.netns(), PY, script(), "capture", "eth0", nonce, "2")
          .redirectErrorStream(true).start();
      BufferedReader rd = new BufferedReader(new InputStreamReader(c.getInputStream(), StandardCharsets.UTF_8));
      assertEquals("READY", rd.readLine());
      caps.put(p == vm1 ? "vm1" : p == vm2 ? "vm2" : "vm3", c);
    }
    lab.exec(inj.netns(), PY, script(), "frame", "eth0", dstMac, inj.mac(), I4, dstIp, String.valueOf(port), nonce).ok();
    Map<String, Boolean> seen = new LinkedHashMap<>();
    for (Map.Entry<String, Process> e : caps.entrySet()) {
      e.getValue().waitFor();
      seen.put(e.getKey(), new String(e.getValue().getInputStream().readAllBytes(), StandardCharsets.UTF_8).contains("SEEN"));
    }
    return seen;
  }

  static void start(String name, NetnsLab.Port p, String rules, String... ips) {
    lab.mustSucceed(lab.hook(name, "start", "begin", "-", domain(name, p, rules, false, ips)));
  }

  static String domain(String name, NetnsLab.Port p, String rules, boolean trusted, String... ips) {
    return InboundProbes.domain(name, p, rules, trusted, true, ips);
  }

  static String tcp(NetnsLab.Port from, String src, String dst, int port) {
    return io.tcp(from.netns(), src, dst, port);
  }

  static String udp(NetnsLab.Port from, String src, int sport, String dst, int port) {
    return io.udp(from.netns(), src, sport, dst, port);
  }

  static String ping(NetnsLab.Port from, String src, String dst) {
    return io.ping(from.netns(), src, dst);
  }

  static void listen(NetnsLab.Port p, String a4, String a6, String tcp, String udp) {
    io.listen(p.netns(), a4, a6, tcp, udp);
  }

  static void addr(NetnsLab.Port p, String... cidrs) {
    io.addr(p, cidrs);
  }

  static void sysctl(int v) {
    io.bridgeNfCall(v);
  }

  static String script() {
    return InboundProbes.script();
  }
}
