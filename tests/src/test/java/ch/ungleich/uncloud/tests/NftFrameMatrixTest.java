package ch.ungleich.uncloud.tests;

import static ch.ungleich.uncloud.tests.FrameMatrix.IP4_UDP;
import static ch.ungleich.uncloud.tests.FrameMatrix.RA;
import static ch.ungleich.uncloud.tests.FrameMatrix.TO_ALL;
import static ch.ungleich.uncloud.tests.FrameMatrix.TO_GW;
import static ch.ungleich.uncloud.tests.FrameMatrix.UDP;
import static ch.ungleich.uncloud.tests.lab.Verdict.DELIVERED;
import static ch.ungleich.uncloud.tests.lab.Verdict.DROPPED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.DomainXml;
import ch.ungleich.uncloud.tests.lab.FrameBatch;
import ch.ungleich.uncloud.tests.lab.FrameToolExtension;
import ch.ungleich.uncloud.tests.lab.Guest;
import ch.ungleich.uncloud.tests.lab.NetnsLab;
import ch.ungleich.uncloud.tests.lab.NftTable;
import ch.ungleich.uncloud.tests.lab.Proc;
import ch.ungleich.uncloud.tests.lab.Verdict;
import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The nft backend, invoked exactly as libvirt invokes the hook, judged by real frames on a real
 * bridge (see {@link NetnsLab}): the frame matrix of issue 3, then the lifecycle scenarios.
 */
class NftFrameMatrixTest {
  @RegisterExtension static final FrameToolExtension FRAMES = new FrameToolExtension();

  @BeforeAll
  static void hookIsBuilt() {
    NetnsLab.jar(); // fail fast with a clear message if the hook is not built
  }

  // ------------------------------------------------------------------ the matrix

  @TestFactory
  Stream<DynamicTest> frameMatrix() {
    List<FrameMatrix.Case> cases = FrameMatrix.cases();
    Map<String, FrameBatch.Outcome> got;
    String ruleset;
    try (NetnsLab lab = NetnsLab.create("m", 1)) {
      lab.start(FrameMatrix.domain());
      got = FrameMatrix.send(FRAMES.tool(), lab, cases);
      ruleset = lab.ruleset();
    }
    return FrameMatrix.verdicts(cases, got, FrameMatrix.Case::expected, ruleset);
  }

  @Test
  void fragmentedTrafficFromOwnAddressesIsReassembledByTheReceiver() {
    try (NetnsLab lab = NetnsLab.create("g", 1)) {
      lab.start(FrameMatrix.domain());
      ReassemblyCheck.assertComplete(ReassemblyCheck.run(FRAMES.tool(), lab, false),
          "--- nft list ruleset (hv)\n" + lab.ruleset());
    }
  }

  // ------------------------------------------------------------------ scenarios

  static final String LEGIT4 = TO_GW + IP4_UDP;
  static final String LEGIT6 = TO_GW + "IPv6(src=IP6, dst=GW6)/" + UDP;
  static final String LEGIT_ARP =
      TO_ALL + "ARP(op=1, hwsrc=MAC, psrc=IP4, hwdst='00:00:00:00:00:00', pdst=GW4)";
  static final String SPOOF_MAC = "Ether(src=SPOOF_MAC, dst=GW_MAC)/" + IP4_UDP;
  static final String SPOOF4 = TO_GW + "IP(src=SPOOF4, dst=GW4)/" + UDP;
  static final String LL_UDP = TO_GW + "IPv6(src=LL, dst=GW_LL)/" + UDP;

  @Test
  void layoutThenStoppedAndReleaseRemoveThePort() {
    DomainXml dom = FrameMatrix.domain();
    Guest g = FrameMatrix.GUEST;
    try (NetnsLab lab = NetnsLab.create("l", 1)) {
      lab.start(dom);

      NftTable t = lab.table();
      assertTrue(t.exists(), "table bridge uncloud after start");
      NftTable.Chain base = t.chains().get("filter-prerouting");
      assertNotNull(base, "base chain filter-prerouting: " + t.chains().keySet());
      assertEquals("filter", base.type());
      assertEquals("prerouting", base.hook());
      assertEquals("accept", base.policy(), "ports not in the map must pass");
      assertEquals(2, base.rules().size(), "one dispatch rule, one vm_taps guard rule: " + base.rules());
      JsonNode vmap = base.rules().get(0).findValue("vmap");
      assertNotNull(vmap, "dispatch is a verdict map: " + base.rules());
      assertEquals("iifname", vmap.path("key").path("meta").path("key").asText());
      assertEquals("@ports", vmap.path("data").asText());
      assertEquals("vnet*", base.rules().get(1).findValue("right").asText(), "guard after the dispatch: " + base.rules());
      assertTrue(NftTable.Chain.drops(base.rules().get(1)) && NftTable.Chain.counts(base.rules().get(1)));
      NftTable.Element e = t.port("vnet0").orElseThrow(() -> new AssertionError(
          "no element vnet0 in map ports: " + t.ports()));
      assertTrue(e.verdict().equals("jump") || e.verdict().equals("goto"), e.toString());
      assertEquals("port-vnet0", e.target());
      assertNotNull(e.comment(), "element comment (domain uuid and MAC)");
      assertTrue(e.comment().toLowerCase(Locale.ROOT).contains(dom.uuid().toString()), e.comment());
      assertTrue(e.comment().toLowerCase(Locale.ROOT).contains(g.mac()), e.comment());
      NftTable.Chain port = t.chains().get("port-vnet0");
      assertNotNull(port, "chain port-vnet0");
      JsonNode last = port.rules().get(port.rules().size() - 1);
      assertTrue(NftTable.Chain.drops(last) && NftTable.Chain.counts(last),
          "port chain ends in counter drop: " + last);

      new Probe(lab, "after start")
          .send("legit", lab.vm(0), g, LEGIT4, DELIVERED)
          .send("spoofed-mac", lab.vm(0), g, SPOOF_MAC, DROPPED)
          .check();
      long drops = lab.table().chains().get("port-vnet0").droppedPackets();
      assertTrue(drops >= 1, "the dropped frame is counted for this NIC: " + drops);

      assertFalse(dom.inactive().contains("<target"), "stopped/release XML has no <target dev>");
      lab.mustSucceed(lab.hook(dom, "stopped", "end"));
      NftTable afterStop = lab.table();
      assertTrue(afterStop.port("vnet0").isEmpty(), "element gone after stopped end: "
          + afterStop.ports());

      lab.mustSucceed(lab.hook(dom, "release", "end"));
      NftTable afterRelease = lab.table();
      assertTrue(afterRelease.ports().isEmpty(), "no element left: " + afterRelease.ports());
      assertFalse(afterRelease.chains().containsKey("port-vnet0"),
          "chain port-vnet0 gone after release end: " + afterRelease.chains().keySet());

      // idempotent: libvirt may call again (or after a restart of the host daemon)
      lab.mustSucceed(lab.hook(dom, "stopped", "end"));
      lab.mustSucceed(lab.hook(dom, "release", "end"));

      // no rules left for vnet0; the lab's veth still carries the name of a VM tap, so the vm_taps
      // guard drops it (a real tap is gone by now), and an uplink port is still not touched
      new Probe(lab, "after release")
          .send("spoofed-mac", lab.vm(0), g, SPOOF_MAC, DROPPED)
          .send("legit", lab.vm(0), g, LEGIT4, DROPPED)
          .send("uplink", lab.injector(), Guest.macOnly(NetnsLab.INJECTOR_MAC, "198.51.100.7", "2001:db8:0:1::7"),
              SPOOF4, DELIVERED)
          .check();
    }
  }

  @Test
  void reusedTapNeverKeepsThePreviousOwnersRules() {
    Guest a = new Guest("52:54:00:aa:bb:01", "192.0.2.10", "2001:db8:0:1::10", "2001:db8:1234::/64");
    Guest b = new Guest("52:54:00:aa:bb:02", "192.0.2.20", "2001:db8:0:1::20", "2001:db8:1235::/64");
    DomainXml domA = DomainXml.domain("ucf-reuse-a").nic(a.mac(), "vnet0", a.ip4(), a.ip6(), a.prefix6());
    DomainXml domB = DomainXml.domain("ucf-reuse-b").nic(b.mac(), "vnet0", b.ip4(), b.ip6(), b.prefix6());
    try (NetnsLab lab = NetnsLab.create("r", List.of(b.mac()))) {
      NetnsLab.Port tap = lab.vm(0);
      lab.start(domA);
      new Probe(lab, "A on vnet0")
          .send("a-legit", tap, a, LEGIT4, DELIVERED)
          .send("b-legit", tap, b, LEGIT4, DROPPED)
          .check();

      // libvirt hands vnet0 to B while A's stop has not run yet
      lab.start(domB);
      new Probe(lab, "B started on A's vnet0")
          .send("b-legit-ipv4", tap, b, LEGIT4, DELIVERED)
          .send("b-legit-ipv6", tap, b, LEGIT6, DELIVERED)
          .send("b-legit-arp", tap, b, LEGIT_ARP, DELIVERED)
          .send("a-legit-ipv4", tap, a, LEGIT4, DROPPED)
          .send("a-legit-arp", tap, a, LEGIT_ARP, DROPPED)
          .send("b-mac-with-a-ipv4", tap, b, TO_GW + "IP(src='192.0.2.10', dst=GW4)/" + UDP, DROPPED)
          .check();

      lab.stop(domA); // late stopped/release of the previous owner
      new Probe(lab, "after A's stopped+release")
          .send("b-legit-ipv4", tap, b, LEGIT4, DELIVERED)
          .send("b-legit-arp", tap, b, LEGIT_ARP, DELIVERED)
          .send("b-spoofed-ipv4", tap, b, SPOOF4, DROPPED)
          .send("b-spoofed-mac", tap, b, SPOOF_MAC, DROPPED)
          .send("a-legit-ipv4", tap, a, LEGIT4, DROPPED)
          .check();
      NftTable t = lab.table();
      NftTable.Element e = t.port("vnet0").orElseThrow(() -> new AssertionError(
          "A's stop removed B's element: " + t.ports()));
      assertTrue(e.comment() != null
          && e.comment().toLowerCase(Locale.ROOT).contains(domB.uuid().toString())
          && !e.comment().toLowerCase(Locale.ROOT).contains(domA.uuid().toString()), e.toString());
      assertTrue(t.chains().containsKey(e.target()), "B's chain " + e.target());
    }
  }

  @Test
  void flushRulesetThenReconnectRestoresProtection() {
    DomainXml dom = FrameMatrix.domain();
    Guest g = FrameMatrix.GUEST;
    try (NetnsLab lab = NetnsLab.create("f", 1)) {
      lab.start(dom);
      new Probe(lab, "after start")
          .send("legit", lab.vm(0), g, LEGIT4, DELIVERED)
          .send("spoofed-ipv4", lab.vm(0), g, SPOOF4, DROPPED)
          .check();

      lab.nft("flush", "ruleset").ok();
      assertFalse(lab.table().exists(), "flush ruleset removed our table");
      new Probe(lab, "after nft flush ruleset (unprotected)")
          .send("spoofed-ipv4", lab.vm(0), g, SPOOF4, DELIVERED)
          .check();

      Proc.Result r = lab.mustSucceed(lab.hook(dom, "reconnect", "begin"));
      assertEquals("", r.out(), "hook stdout");
      assertTrue(lab.table().port("vnet0").isPresent(), "vnet0 back in the map");
      new Probe(lab, "after reconnect begin")
          .send("legit-ipv4", lab.vm(0), g, LEGIT4, DELIVERED)
          .send("legit-ipv6", lab.vm(0), g, LEGIT6, DELIVERED)
          .send("spoofed-ipv4", lab.vm(0), g, SPOOF4, DROPPED)
          .send("spoofed-mac", lab.vm(0), g, SPOOF_MAC, DROPPED)
          .send("ra", lab.vm(0), g, FrameMatrix.NA_TO_ALL + RA, DROPPED)
          .check();
    }
  }

  @Test
  void twentyConcurrentStartsAreAllProtected() throws Exception {
    int n = 20;
    List<Guest> guests = new ArrayList<>();
    List<DomainXml> doms = new ArrayList<>();
    for (int i = 1; i <= n; i++) {
      Guest g = new Guest(String.format("52:54:00:aa:bb:%02x", i), "192.0.2." + (100 + i),
          String.format("2001:db8:0:1::%x", 0x100 + i), String.format("2001:db8:1000:%x::/64", i));
      guests.add(g);
      doms.add(DomainXml.domain(String.format("ucf-c%02d", i))
          .nic(g.mac(), "vnet" + (i - 1), g.ip4(), g.ip6(), g.prefix6()));
    }
    try (NetnsLab lab = NetnsLab.create("c", guests.stream().map(Guest::mac).toList())) {
      ExecutorService pool = Executors.newFixedThreadPool(n);
      List<Future<Proc.Result>> runs = new ArrayList<>();
      CountDownLatch go = new CountDownLatch(1);
      try {
        for (DomainXml d : doms) {
          runs.add(pool.submit(() -> {
            go.await();
            return lab.hook(d, "start", "begin");
          }));
        }
        go.countDown();
        List<String> failed = new ArrayList<>();
        for (Future<Proc.Result> f : runs) {
          Proc.Result r = f.get();
          if (r.exit() != 0 || !r.out().isEmpty()) {
            failed.add(r.describe());
          }
        }
        assertTrue(failed.isEmpty(), "concurrent starts failed:\n" + String.join("\n", failed)
            + "\n--- hook log\n" + lab.hookLog());
      } finally {
        pool.shutdownNow();
      }

      NftTable t = lab.table();
      assertEquals(n, t.ports().size(), "elements: " + t.ports().keySet());
      for (int i = 0; i < n; i++) {
        String tap = "vnet" + i;
        NftTable.Element e = t.port(tap).orElseThrow(() -> new AssertionError("no element " + tap));
        assertTrue(t.chains().containsKey(e.target()), tap + " -> missing chain " + e.target());
        assertTrue(e.comment() != null
            && e.comment().toLowerCase(Locale.ROOT).contains(doms.get(i).uuid().toString()),
            tap + " comment " + e.comment());
      }

      Probe p = new Probe(lab, "after 20 concurrent starts");
      for (int i = 0; i < n; i++) {
        Guest g = guests.get(i);
        p.send("vm" + (i + 1) + "-legit", lab.vm(i), g, LEGIT4, DELIVERED)
            .send("vm" + (i + 1) + "-spoofed-mac", lab.vm(i), g, SPOOF_MAC, DROPPED)
            .send("vm" + (i + 1) + "-spoofed-ipv4", lab.vm(i), g, SPOOF4, DROPPED);
      }
      p.check();
    }
  }

  @Test
  void unlistedNicWithDefaultDenyGetsOnlyItsMacAndOwnLinkLocal() {
    Guest listed = FrameMatrix.GUEST;
    // addresses the unlisted NIC was never given
    Guest unlisted = Guest.macOnly("52:54:00:aa:bb:02", "192.0.2.20", "2001:db8:0:1::20");
    DomainXml dom = DomainXml.domain("ucf-unlisted")
        .nic(listed.mac(), "vnet0", listed.ip4(), listed.ip6(), listed.prefix6())
        .unlistedNic(unlisted.mac(), "vnet1");
    try (NetnsLab lab = NetnsLab.create("u", List.of(listed.mac(), unlisted.mac()))) {
      lab.config(); // defaults: no "unlisted" key, so unlisted = deny
      lab.start(dom);
      assertTrue(lab.table().port("vnet1").isPresent(), "unlisted NIC is filtered too");
      NetnsLab.Port u = lab.vm(1);
      new Probe(lab, "unlisted = deny")
          .send("listed-legit-ipv4", lab.vm(0), listed, LEGIT4, DELIVERED)
          .send("unlisted-own-link-local-udp", u, unlisted, LL_UDP, DELIVERED)
          .send("unlisted-ns-from-own-link-local", u, unlisted,
              "Ether(src=MAC, dst=mcmac(snma(GW_LL)))/IPv6(src=LL, dst=snma(GW_LL), hlim=255)"
                  + "/ICMPv6ND_NS(tgt=GW_LL)/ICMPv6NDOptSrcLLAddr(lladdr=MAC)", DELIVERED)
          .send("unlisted-na-own-link-local", u, unlisted, TO_GW
              + "IPv6(src=LL, dst=GW_LL, hlim=255)/ICMPv6ND_NA(tgt=LL, R=0, S=1, O=1)"
              + "/ICMPv6NDOptDstLLAddr(lladdr=MAC)", DELIVERED)
          .send("unlisted-rs-from-link-local", u, unlisted, "Ether(src=MAC, dst='33:33:00:00:00:02')"
              + "/IPv6(src=LL, dst='ff02::2', hlim=255)/ICMPv6ND_RS()"
              + "/ICMPv6NDOptSrcLLAddr(lladdr=MAC)", DELIVERED)
          .send("unlisted-ipv4", u, unlisted, LEGIT4, DROPPED)
          .send("unlisted-arp-with-an-ipv4", u, unlisted, LEGIT_ARP, DROPPED)
          .send("unlisted-ipv6-global", u, unlisted, LEGIT6, DROPPED)
          .send("unlisted-dhcpv4-discover", u, unlisted, TO_ALL
              + "IP(src='0.0.0.0', dst='255.255.255.255')/UDP(sport=68, dport=67)/"
              + FrameMatrix.DHCP4_DISCOVER, DROPPED)
          .send("unlisted-foreign-link-local", u, unlisted,
              TO_GW + "IPv6(src=FOREIGN_LL, dst=GW_LL)/" + UDP, DROPPED)
          .send("unlisted-spoofed-mac", u, unlisted,
              "Ether(src=SPOOF_MAC, dst=GW_MAC)/IPv6(src=LL, dst=GW_LL)/" + UDP, DROPPED)
          .send("unlisted-na-for-gateway-fe80-1", u, unlisted, FrameMatrix.NA_TO_ALL
              + "ICMPv6ND_NA(tgt=GW_LL, R=1, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr=MAC)", DROPPED)
          .send("unlisted-ra", u, unlisted, FrameMatrix.NA_TO_ALL + RA, DROPPED)
          .send("unlisted-rarp-announce-self", u, unlisted, FrameMatrix.ANNOUNCE, DELIVERED)
          .send("unlisted-rarp-reply", u, unlisted, FrameMatrix.ANNOUNCE.replace("op=3", "op=4"), DROPPED)
          .send("unlisted-atomic-fragment-ns", u, unlisted, "Ether(src=MAC, dst=mcmac(snma(GW_LL)))"
              + "/IPv6(src=LL, dst=snma(GW_LL), hlim=255)/IPv6ExtHdrFragment(offset=0, m=0, id=1)"
              + "/ICMPv6ND_NS(tgt=GW_LL)/ICMPv6NDOptSrcLLAddr(lladdr=MAC)", DROPPED)
          .check();
    }
  }

  @Test
  void trustedNicPassesEverythingItsSiblingDoesNot() {
    Guest router = new Guest("52:54:00:aa:bb:01", "192.0.2.10", "2001:db8:0:1::10", "2001:db8:1234::/64");
    Guest other = new Guest("52:54:00:aa:bb:02", "192.0.2.20", "2001:db8:0:1::20", "2001:db8:1235::/64");
    DomainXml dom = DomainXml.domain("ucf-trusted")
        .trustedNic(router.mac(), "vnet0")
        .nic(other.mac(), "vnet1", other.ip4(), other.ip6(), other.prefix6());
    try (NetnsLab lab = NetnsLab.create("t", List.of(router.mac(), other.mac()))) {
      lab.start(dom);
      NetnsLab.Port r = lab.vm(0);
      new Probe(lab, "trusted vnet0, filtered vnet1")
          .send("trusted-spoofed-mac-and-ipv4", r, router,
              "Ether(src=SPOOF_MAC, dst=GW_MAC)/IP(src=SPOOF4, dst=GW4)/" + UDP, DELIVERED)
          .send("trusted-ipv6-any-source", r, router, TO_GW + "IPv6(src=SPOOF6, dst=GW6)/" + UDP,
              DELIVERED)
          .send("trusted-ra", r, router, FrameMatrix.NA_TO_ALL + RA, DELIVERED)
          .send("trusted-vlan-tagged", r, router, TO_GW + "Dot1Q(vlan=10)/" + IP4_UDP, DELIVERED)
          .send("trusted-dhcpv4-server", r, router, TO_ALL
              + "IP(src=IP4, dst='255.255.255.255')/UDP(sport=67, dport=68)"
              + "/BOOTP(op=2, yiaddr=SPOOF4, chaddr=mac2str(SPOOF_MAC), xid=1)"
              + "/DHCP(options=[('message-type', 'offer'), 'end'])", DELIVERED)
          .send("sibling-legit", lab.vm(1), other, LEGIT4, DELIVERED)
          .send("sibling-spoofed-ipv4", lab.vm(1), other, SPOOF4, DROPPED)
          .send("sibling-ra", lab.vm(1), other, FrameMatrix.NA_TO_ALL + RA, DROPPED)
          .check();
    }
  }

  /**
   * The other host settings, each judged by frames: {@code unlisted = mac-only} (own MAC, any IP, still no
   * RA or tags), {@code link_local = any} (any fe80:: source, and the documented cost: a neighbor
   * advertisement for the gateway's fe80::1 passes), {@code dhcp_client = no}; then {@code unlisted =
   * allow} with a new {@code start begin} takes the unlisted NIC's chain away entirely.
   */
  @Test
  void hostSettingsMacOnlyLinkLocalAnyNoDhcpThenAllow() {
    Guest listed = FrameMatrix.GUEST;
    Guest unlisted = Guest.macOnly("52:54:00:aa:bb:02", "192.0.2.20", "2001:db8:0:1::20");
    DomainXml dom = DomainXml.domain("ucf-settings")
        .nic(listed.mac(), "vnet0", listed.ip4(), listed.ip6(), listed.prefix6())
        .unlistedNic(unlisted.mac(), "vnet1");
    String discover = TO_ALL + "IP(src='0.0.0.0', dst='255.255.255.255')/UDP(sport=68, dport=67)/"
        + FrameMatrix.DHCP4_DISCOVER;
    try (NetnsLab lab = NetnsLab.create("s", List.of(listed.mac(), unlisted.mac()))) {
      lab.config("unlisted = mac-only", "link_local = any", "dhcp_client = no");
      lab.start(dom);
      NetnsLab.Port l = lab.vm(0);
      NetnsLab.Port u = lab.vm(1);
      new Probe(lab, "unlisted = mac-only, link_local = any, dhcp_client = no")
          .send("listed-legit-ipv4", l, listed, LEGIT4, DELIVERED)
          .send("listed-foreign-link-local", l, listed, TO_GW + "IPv6(src=FOREIGN_LL, dst=GW_LL)/" + UDP,
              DELIVERED)
          .send("listed-na-for-gateway-fe80-1-is-the-cost", l, listed, FrameMatrix.NA_TO_ALL
              + "ICMPv6ND_NA(tgt=GW_LL, R=1, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr=MAC)", DELIVERED)
          .send("listed-dhcpv4-discover", l, listed, discover, DROPPED)
          .send("listed-spoofed-ipv4", l, listed, SPOOF4, DROPPED)
          .send("mac-only-any-ipv4", u, unlisted, SPOOF4, DELIVERED)
          .send("mac-only-any-ipv6", u, unlisted, TO_GW + "IPv6(src=SPOOF6, dst=GW6)/" + UDP, DELIVERED)
          .send("mac-only-arp-any-ip", u, unlisted,
              TO_ALL + "ARP(op=2, hwsrc=MAC, psrc=SPOOF4, hwdst=GW_MAC, pdst=GW4)", DELIVERED)
          .send("mac-only-arp-foreign-sender-mac", u, unlisted,
              TO_ALL + "ARP(op=2, hwsrc=SPOOF_MAC, psrc=IP4, hwdst=GW_MAC, pdst=GW4)", DROPPED)
          .send("mac-only-spoofed-mac", u, unlisted, SPOOF_MAC, DROPPED)
          .send("mac-only-ra", u, unlisted, FrameMatrix.NA_TO_ALL + RA, DROPPED)
          .send("mac-only-dhcpv4-server", u, unlisted, TO_ALL
              + "IP(src=IP4, dst='255.255.255.255')/UDP(sport=67, dport=68)"
              + "/BOOTP(op=2, yiaddr=SPOOF4, chaddr=mac2str(SPOOF_MAC), xid=1)"
              + "/DHCP(options=[('message-type', 'offer'), 'end'])", DROPPED)
          .send("mac-only-vlan-tagged", u, unlisted, TO_GW + "Dot1Q(vlan=10)/" + IP4_UDP, DROPPED)
          .send("mac-only-rarp-announce-self", u, unlisted, FrameMatrix.ANNOUNCE, DELIVERED)
          .send("mac-only-rarp-foreign-target-hw", u, unlisted,
              FrameMatrix.ANNOUNCE.replace("hwdst=MAC", "hwdst=SPOOF_MAC"), DROPPED)
          .send("mac-only-udp-fragment-1of3", u, unlisted, FrameMatrix.frag(FrameMatrix.FRAG_UDP4, 0), DELIVERED)
          .send("mac-only-udp-fragment-2of3", u, unlisted, FrameMatrix.frag(FrameMatrix.FRAG_UDP4, 1), DELIVERED)
          .send("mac-only-udp-fragment-3of3", u, unlisted, FrameMatrix.frag(FrameMatrix.FRAG_UDP4, 2), DELIVERED)
          .send("mac-only-udp6-fragment-1of2", u, unlisted, FrameMatrix.frag(FrameMatrix.FRAG_UDP6, 0), DELIVERED)
          .send("mac-only-udp6-fragment-2of2", u, unlisted, FrameMatrix.frag(FrameMatrix.FRAG_UDP6, 1), DELIVERED)
          .send("mac-only-ra-behind-destopt-cut-in-first-fragment", u, unlisted,
              FrameMatrix.firstFragment(FrameMatrix.ALL_NODES, "IPv6(src=LL, dst='ff02::1', hlim=255)", 60,
                  FrameMatrix.RA_BEHIND_LONG_DESTOPT, 64), DROPPED)
          .send("mac-only-atomic-fragment-ra", u, unlisted, FrameMatrix.NA_TO_ALL
              + "IPv6ExtHdrFragment(offset=0, m=0, id=2)/" + RA, DROPPED)
          .send("mac-only-dhcpv4-offer-first-fragment-without-udp-header", u, unlisted, TO_ALL
              + "IP(src=IP4, dst='255.255.255.255', proto=17, flags='MF', frag=0, id=3)", DROPPED)
          .check();

      lab.config("unlisted = allow");
      lab.start(dom);
      NftTable.Chain open = lab.table().chains().get("port-vnet1");
      assertTrue(open != null && open.rules().size() == 1 && open.rules().get(0).findValue("accept") != null,
          "unlisted = allow: a chain with a lone accept, so the vm_taps guard knows the NIC: " + lab.ruleset());
      new Probe(lab, "unlisted = allow")
          .send("allow-spoofed-mac", u, unlisted, SPOOF_MAC, DELIVERED)
          .send("allow-ra", u, unlisted, FrameMatrix.NA_TO_ALL + RA, DELIVERED)
          .send("listed-still-filtered", l, listed, SPOOF4, DROPPED)
          .send("listed-dhcpv4-discover-default-yes", l, listed, discover, DELIVERED)
          .check();
    }
  }

  // ------------------------------------------------------------------ the vm_taps guard (issue 13)

  static final Guest FILTERED = new Guest("52:54:00:aa:bb:01", "192.0.2.10", "2001:db8:0:1::10", "2001:db8:1234::/64");
  static final Guest TRUSTED = new Guest("52:54:00:aa:bb:02", "192.0.2.20", "2001:db8:0:1::20", "2001:db8:1235::/64");
  static final Guest OPEN = Guest.macOnly("52:54:00:aa:bb:03", "192.0.2.30", "2001:db8:0:1::30");
  static final Guest PLUGGED = new Guest("52:54:00:aa:bb:09", "192.0.2.90", "2001:db8:0:1::90", "2001:db8:1239::/64");
  static final Guest UPLINK = Guest.macOnly(NetnsLab.INJECTOR_MAC, "198.51.100.7", "2001:db8:0:2::7");

  /**
   * A tap that joins the bridge without rules (a hot-plugged NIC, no agent running) is dropped, its
   * own legit frames too; an uplink, a trusted NIC and an {@code unlisted = allow} NIC pass everything;
   * the filtered NIC is filtered as before. Once a hook call (what the agent does) covers the new NIC,
   * its legit frames pass and its spoofed ones drop.
   */
  @Test
  void vmTapsGuardDropsATapWithoutRulesAndNothingElse() {
    DomainXml dom = DomainXml.domain("ucf-guard")
        .nic(FILTERED.mac(), "vnet0", FILTERED.ip4(), FILTERED.ip6(), FILTERED.prefix6())
        .trustedNic(TRUSTED.mac(), "vnet1")
        .unlistedNic(OPEN.mac(), "vnet2");
    try (NetnsLab lab = NetnsLab.create("g", List.of(FILTERED.mac(), TRUSTED.mac(), OPEN.mac()))) {
      lab.config("unlisted = allow");
      lab.start(dom);
      NetnsLab.Port plugged = lab.addPort("vnet9", PLUGGED.mac());
      new Probe(lab, "vnet9 on the bridge without rules")
          .send("plugged-legit-ipv4", plugged, PLUGGED, LEGIT4, DROPPED)
          .send("plugged-legit-arp", plugged, PLUGGED, LEGIT_ARP, DROPPED)
          .send("plugged-spoofed-ipv4", plugged, PLUGGED, SPOOF4, DROPPED)
          .send("uplink-any", lab.injector(), UPLINK, SPOOF4, DELIVERED)
          .send("uplink-ra", lab.injector(), UPLINK, FrameMatrix.NA_TO_ALL + RA, DELIVERED)
          .send("trusted-spoofed", lab.vm(1), TRUSTED, "Ether(src=SPOOF_MAC, dst=GW_MAC)/IP(src=SPOOF4, dst=GW4)/" + UDP,
              DELIVERED)
          .send("trusted-ra", lab.vm(1), TRUSTED, FrameMatrix.NA_TO_ALL + RA, DELIVERED)
          .send("allow-spoofed-mac", lab.vm(2), OPEN, SPOOF_MAC, DELIVERED)
          .send("filtered-legit", lab.vm(0), FILTERED, LEGIT4, DELIVERED)
          .send("filtered-legit-ipv6", lab.vm(0), FILTERED, LEGIT6, DELIVERED)
          .send("filtered-spoofed", lab.vm(0), FILTERED, SPOOF4, DROPPED)
          .check();
      NftTable.Chain base = lab.table().chains().get("filter-prerouting");
      assertTrue(base.droppedPackets() >= 3, "the guard counts what it drops: " + base.rules());

      // the NIC's rules arrive (the agent, or the next start/reconnect): the same domain with vnet9
      DomainXml plug = DomainXml.domain("ucf-guard")
          .nic(FILTERED.mac(), "vnet0", FILTERED.ip4(), FILTERED.ip6(), FILTERED.prefix6())
          .trustedNic(TRUSTED.mac(), "vnet1")
          .unlistedNic(OPEN.mac(), "vnet2")
          .nic(PLUGGED.mac(), "vnet9", PLUGGED.ip4(), PLUGGED.ip6(), PLUGGED.prefix6());
      lab.mustSucceed(lab.hook(plug, "reconnect", "begin"));
      new Probe(lab, "vnet9 with its rules")
          .send("plugged-legit-ipv4", plugged, PLUGGED, LEGIT4, DELIVERED)
          .send("plugged-legit-arp", plugged, PLUGGED, LEGIT_ARP, DELIVERED)
          .send("plugged-spoofed-ipv4", plugged, PLUGGED, SPOOF4, DROPPED)
          .send("plugged-spoofed-mac", plugged, PLUGGED, SPOOF_MAC, DROPPED)
          .send("trusted-spoofed", lab.vm(1), TRUSTED, "Ether(src=SPOOF_MAC, dst=GW_MAC)/IP(src=SPOOF4, dst=GW4)/" + UDP,
              DELIVERED)
          .check();
    }
  }

  /**
   * Upgrade from a version without the guard, while VMs run: A's trusted NIC and all of B (started
   * before the hook was installed) have no element. A hook call for A alone cannot know B, so it leaves
   * the guard out and B keeps its traffic; the call that covers B adds the guard in the same
   * transaction as B's rules: at no step is a running NIC cut off.
   */
  @Test
  void vmTapsGuardOnAnUpgradedHostNeverCutsARunningVmOff() {
    Guest b = new Guest("52:54:00:aa:bb:03", "192.0.2.30", "2001:db8:0:1::30", "2001:db8:1236::/64");
    DomainXml domA = DomainXml.domain("ucf-upgrade-a")
        .nic(FILTERED.mac(), "vnet0", FILTERED.ip4(), FILTERED.ip6(), FILTERED.prefix6())
        .trustedNic(TRUSTED.mac(), "vnet1");
    DomainXml domB = DomainXml.domain("ucf-upgrade-b").nic(b.mac(), "vnet2", b.ip4(), b.ip6(), b.prefix6());
    try (NetnsLab lab = NetnsLab.create("u", List.of(FILTERED.mac(), TRUSTED.mac(), b.mac()))) {
      // what an older version left: no guard, no element for the trusted NIC, nothing for B
      lab.config("vm_taps = none");
      lab.start(domA);
      lab.nft("delete", "element", "bridge", "uncloud", "ports", "{", "\"vnet1\"", "}").ok();
      lab.nft("delete", "chain", "bridge", "uncloud", "port-vnet1").ok();
      assertEquals(1, lab.table().chains().get("filter-prerouting").rules().size(), lab.ruleset());

      lab.config(); // the upgrade: vm_taps = vnet* by default
      lab.mustSucceed(lab.hook(domA, "reconnect", "begin"));
      assertEquals(1, lab.table().chains().get("filter-prerouting").rules().size(),
          "the guard must wait for B's rules: " + lab.ruleset());
      assertTrue(lab.hookLog().contains("vm_taps guard 'vnet*' (vnet2) not added"), lab.hookLog());
      new Probe(lab, "after A's call: B untouched, A's trusted NIC has its accept")
          .send("b-legit", lab.vm(2), b, LEGIT4, DELIVERED)
          .send("b-spoofed-still-unfiltered", lab.vm(2), b, SPOOF4, DELIVERED)
          .send("a-trusted-spoofed", lab.vm(1), TRUSTED, "Ether(src=SPOOF_MAC, dst=GW_MAC)/IP(src=SPOOF4, dst=GW4)/" + UDP,
              DELIVERED)
          .send("a-filtered-spoofed", lab.vm(0), FILTERED, SPOOF4, DROPPED)
          .check();

      lab.mustSucceed(lab.hook(domB, "reconnect", "begin"));
      NftTable.Chain base = lab.table().chains().get("filter-prerouting");
      assertEquals(2, base.rules().size(), "B's call adds the guard with B's rules: " + lab.ruleset());
      NetnsLab.Port plugged = lab.addPort("vnet9", PLUGGED.mac());
      new Probe(lab, "guard in place, every running NIC known")
          .send("b-legit", lab.vm(2), b, LEGIT4, DELIVERED)
          .send("b-legit-arp", lab.vm(2), b, LEGIT_ARP, DELIVERED)
          .send("b-spoofed", lab.vm(2), b, SPOOF4, DROPPED)
          .send("a-trusted-spoofed", lab.vm(1), TRUSTED, "Ether(src=SPOOF_MAC, dst=GW_MAC)/IP(src=SPOOF4, dst=GW4)/" + UDP,
              DELIVERED)
          .send("a-filtered-legit", lab.vm(0), FILTERED, LEGIT4, DELIVERED)
          .send("a-filtered-spoofed", lab.vm(0), FILTERED, SPOOF4, DROPPED)
          .send("plugged-legit", plugged, PLUGGED, LEGIT4, DROPPED)
          .send("uplink", lab.injector(), UPLINK, SPOOF4, DELIVERED)
          .check();
    }
  }

  // ------------------------------------------------------------------ helpers

  /** A batch with an expected verdict per frame; {@link #check()} reports every mismatch at once. */
  static final class Probe {
    private final NetnsLab lab;
    private final String step;
    private final FrameBatch batch;
    private final Map<String, Verdict> want = new LinkedHashMap<>();

    Probe(NetnsLab lab, String step) {
      this.lab = lab;
      this.step = step;
      this.batch = FRAMES.tool().batch(lab);
    }

    Probe send(String name, NetnsLab.Port from, Guest g, String expr, Verdict expected) {
      batch.add(name, from, g, expr);
      want.put(name, expected);
      return this;
    }

    void check() {
      Map<String, FrameBatch.Outcome> got = batch.run();
      List<String> wrong = new ArrayList<>();
      want.forEach((name, v) -> {
        FrameBatch.Outcome o = got.get(name);
        if (o.verdict() != v) {
          wrong.add("expected " + v + ", observed " + o.describe());
        }
      });
      if (!wrong.isEmpty()) {
        throw new AssertionError(step + ": " + wrong.size() + " of " + want.size()
            + " frames wrong\n" + String.join("\n", wrong) + "\n--- nft list ruleset (hv)\n"
            + lab.ruleset() + "--- hook log\n" + lab.hookLog());
      }
    }
  }
}
