package ch.ungleich.uncloud.tests;

import static ch.ungleich.uncloud.tests.FrameMatrix.IP4_UDP;
import static ch.ungleich.uncloud.tests.FrameMatrix.TO_GW;
import static ch.ungleich.uncloud.tests.FrameMatrix.UDP;
import static ch.ungleich.uncloud.tests.lab.Verdict.DELIVERED;
import static ch.ungleich.uncloud.tests.lab.Verdict.DROPPED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.DomainXml;
import ch.ungleich.uncloud.tests.lab.EtcdCluster;
import ch.ungleich.uncloud.tests.lab.FrameBatch;
import ch.ungleich.uncloud.tests.lab.FrameToolExtension;
import ch.ungleich.uncloud.tests.lab.Guest;
import ch.ungleich.uncloud.tests.lab.NetnsLab;
import ch.ungleich.uncloud.tests.lab.Proc;
import ch.ungleich.uncloud.tests.lab.Verdict;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * {@code source = etcd} against a real 3-member etcd cluster (Debian's etcd-server) in the lab's
 * hypervisor namespace: VMs whose only addresses are in etcd, proven by frames over the lab bridge;
 * hostile values refused with nothing applied; one member stopped and calls still succeed; all stopped
 * and a start is refused with the one line while a running VM keeps its rules.
 */
class EtcdSourceTest {
  @RegisterExtension static final FrameToolExtension FRAMES = new FrameToolExtension();
  static final String PREFIX = "distributed-firewall/vm/";
  static final Guest VM1 = new Guest("52:54:00:aa:bb:01", "192.0.2.10", "2001:db8:0:1::10", "2001:db8:1234::/64");
  static final Guest VM2 = new Guest("52:54:00:aa:bb:02", "192.0.2.20", "2001:db8:0:1::20", "2001:db8:2222::/64");
  static final String LEGIT4 = TO_GW + IP4_UDP;
  static final String LEGIT6 = TO_GW + "IPv6(src=IP6, dst=GW6)/" + UDP;
  static final String LEGIT_NET6 = TO_GW + "IPv6(src=NET6, dst=GW6)/" + UDP;
  static final String SPOOF4 = TO_GW + "IP(src=SPOOF4, dst=GW4)/" + UDP;
  static final String SPOOF6 = TO_GW + "IPv6(src=SPOOF6, dst=GW6)/" + UDP;
  static final String SPOOF_MAC = "Ether(src=SPOOF_MAC, dst=GW_MAC)/" + IP4_UDP;

  @BeforeAll
  static void hookIsBuilt() {
    NetnsLab.jar();
  }

  @Test
  void addressesOnlyInEtcdFailClosedAndSurviveAMemberLoss() {
    // no <uc:firewall> in the XML at all: every address below comes from etcd
    DomainXml dom1 = DomainXml.domain("uet-etcd1").unlistedNic(VM1.mac(), "vnet0");
    DomainXml dom2 = DomainXml.domain("uet-etcd2").unlistedNic(VM2.mac(), "vnet1");
    try (NetnsLab lab = NetnsLab.create("e", List.of(VM1.mac(), VM2.mac()));
        EtcdCluster etcd = EtcdCluster.start(lab.hv(), lab.dir(), 3)) {
      lab.config("source = etcd", "etcd_endpoints = " + etcd.endpointsSetting(), "etcd_timeout = 1");
      // uncloud's form, exactly as its design writes it
      etcd.put(PREFIX + dom1.uuid(), "{\"ipv6\": [\"" + VM1.ip6() + "/128\", \"" + VM1.prefix6() + "\"], \"ipv4\": [\""
          + VM1.ip4() + "/32\"]}");
      lab.start(dom1);
      probe(lab, "VM1 from etcd", VM1, lab.vm(0));

      // hostile or wrong values for VM2: each refused at prepare and start, nothing applied
      String before = rules(lab);
      Map<String, String> bad = new LinkedHashMap<>();
      bad.put("{\"ipv4\": [\"" + VM2.ip4() + "\"", "not valid JSON");
      bad.put("{\"ipv4\": \"" + VM2.ip4() + "\"}", "must be an array of strings");
      bad.put("{\"ipv4\": [3221225492]}", "found the number");
      bad.put("{\"ipv4\": [\"" + VM2.ip6() + "\"]}", "an IPv6 address");
      bad.put("{\"ipv4\": [\"" + VM2.ip4() + "\"], \"ipv5\": []}", "unknown key \"ipv5\"");
      bad.put("{\"interfaces\": {\"" + VM2.mac() + "\": {\"ipv4\": [\"0.0.0.0/0\"]}}}", "'this network'");
      bad.put("{\"interfaces\": {\"" + VM2.mac() + "\": {\"trusted\": \"yes\"}}}", "must be true or false");
      bad.put("{\"interfaces\": {\"52:54:00:aa:bb:99\": {}}}", "is not a NIC of this domain");
      bad.put("{\"ipv4\": [\"192.0.2.20\\u001b[2J\\n\"]}", "\\u001b[2J\\u000a");
      bad.put("[" + "[".repeat(30) + "]".repeat(30) + "]", "nesting depth");
      for (Map.Entry<String, String> b : bad.entrySet()) {
        etcd.put(PREFIX + dom2.uuid(), b.getKey());
        for (String op : List.of("prepare", "start")) {
          Proc.Result r = lab.hook(dom2, op, "begin");
          assertEquals(1, r.exit(), b.getKey() + ": " + r.describe());
          assertEquals("", r.out());
          List<String> lines = r.err().lines().toList();
          assertEquals(1, lines.size(), r.err());
          assertTrue(lines.get(0).startsWith("uncloud-hook: uet-etcd2 ") && lines.get(0).contains(b.getValue()), lines.get(0));
        }
      }
      assertEquals(before, rules(lab), "no refused value changed the ruleset");

      // the per-NIC form
      etcd.put(PREFIX + dom2.uuid(), "{\"interfaces\": {\"" + VM2.mac().toUpperCase() + "\": {\"ipv4\": [\"" + VM2.ip4()
          + "\"], \"ipv6\": [\"" + VM2.ip6() + "\", \"" + VM2.prefix6() + "\"], \"trusted\": false}}}");
      lab.start(dom2);
      probe(lab, "VM2 from etcd", VM2, lab.vm(1));

      // one member gone (the first endpoint, which the hook asks first): every call still succeeds
      etcd.stop(0);
      lab.stop(dom1);
      lab.start(dom1);
      lab.mustSucceed(lab.hook(dom2, "reconnect", "begin"));
      probe(lab, "VM1 after one member stopped", VM1, lab.vm(0));

      // all gone: a start is refused with one line naming the endpoints; the running VM keeps its rules
      etcd.stop(1);
      etcd.stop(2);
      lab.stop(dom2);
      before = rules(lab);
      for (String op : List.of("prepare", "start")) {
        Proc.Result r = lab.hook(dom2, op, "begin");
        assertEquals(5, r.exit(), r.describe());
        List<String> lines = r.err().lines().toList();
        assertEquals(1, lines.size(), r.err());
        assertTrue(lines.get(0).startsWith("uncloud-hook: uet-etcd2: etcd key " + PREFIX + dom2.uuid() + ": no endpoint answered ("
            + etcd.endpoints().get(0) + ": Connection refused; " + etcd.endpoints().get(1)), lines.get(0));
      }
      Proc.Result r = lab.hook(dom1, "reconnect", "begin");
      assertEquals(0, r.exit(), r.describe());
      assertTrue(r.err().contains("no endpoint answered") && r.err().contains("the VM keeps running"), r.err());
      assertEquals(before, rules(lab),
          "refused start and failed reconnect changed nothing");
      probe(lab, "VM1 with etcd down", VM1, lab.vm(0));
    }
  }

  /**
   * TLS as a cluster with {@code --client-cert-auth} wants it: with etcd_ca, etcd_cert and etcd_key the
   * start succeeds with the key's addresses; without the client certificate etcd refuses the handshake
   * and the start is refused (exit 5) with one line naming the endpoint.
   */
  @Test
  void tlsWithAClientCertificate() {
    DomainXml dom = DomainXml.domain("uet-etcdtls").unlistedNic(VM1.mac(), "vnet0");
    try (NetnsLab lab = NetnsLab.create("t", List.of(VM1.mac()));
        EtcdCluster etcd = EtcdCluster.start(lab.hv(), lab.dir(), 1, true)) {
      etcd.put(PREFIX + dom.uuid(), "{\"ipv4\": [\"" + VM1.ip4() + "\"], \"ipv6\": [\"" + VM1.ip6() + "\", \"" + VM1.prefix6()
          + "\"]}");
      lab.config("source = etcd", "etcd_endpoints = " + etcd.endpointsSetting(), "etcd_timeout = 2", "etcd_ca = " + etcd.ca());
      Proc.Result r = lab.hook(dom, "prepare", "begin");
      assertEquals(5, r.exit(), r.describe());
      assertEquals(1, r.err().lines().count(), r.err());
      assertTrue(r.err().startsWith("uncloud-hook: uet-etcdtls: etcd key " + PREFIX + dom.uuid() + ": no endpoint answered ("
          + etcd.endpoints().get(0) + ": "), r.err());
      lab.config("source = etcd", "etcd_endpoints = " + etcd.endpointsSetting(), "etcd_timeout = 2", "etcd_ca = " + etcd.ca(),
          "etcd_cert = " + etcd.clientCert(), "etcd_key = " + etcd.clientKey());
      lab.start(dom);
      probe(lab, "VM1 over TLS", VM1, lab.vm(0));
    }
  }

  /** The ruleset without its counters (the VMs' own IPv6 chatter moves them). */
  static String rules(NetnsLab lab) {
    return lab.ruleset().replaceAll("packets \\d+ bytes \\d+", "");
  }

  /** Legit frames from the VM's etcd addresses delivered; spoofed source IPs and MAC next to them dropped. */
  static void probe(NetnsLab lab, String step, Guest g, NetnsLab.Port port) {
    FrameBatch batch = FRAMES.tool().batch(lab);
    Map<String, Verdict> want = new LinkedHashMap<>();
    add(batch, want, port, g, "legit-ipv4", LEGIT4, DELIVERED);
    add(batch, want, port, g, "legit-ipv6", LEGIT6, DELIVERED);
    add(batch, want, port, g, "legit-prefix6", LEGIT_NET6, DELIVERED);
    add(batch, want, port, g, "spoofed-ipv4", SPOOF4, DROPPED);
    add(batch, want, port, g, "spoofed-ipv6", SPOOF6, DROPPED);
    add(batch, want, port, g, "spoofed-mac", SPOOF_MAC, DROPPED);
    Map<String, FrameBatch.Outcome> got = batch.run();
    List<String> wrong = new ArrayList<>();
    want.forEach((name, v) -> {
      if (got.get(name).verdict() != v) {
        wrong.add("expected " + v + ", observed " + got.get(name).describe());
      }
    });
    if (!wrong.isEmpty()) {
      throw new AssertionError(step + ": " + String.join("\n", wrong) + "\n--- nft list ruleset (hv)\n" + lab.ruleset()
          + "--- hook log\n" + lab.hookLog());
    }
  }

  private static void add(FrameBatch b, Map<String, Verdict> want, NetnsLab.Port port, Guest g, String name, String expr,
      Verdict v) {
    b.add(name, port, g, expr);
    want.put(name, v);
  }
}
