package ch.ungleich.uncloud.tests;

import static ch.ungleich.uncloud.tests.lab.Verdict.DELIVERED;
import static ch.ungleich.uncloud.tests.lab.Verdict.DROPPED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.nwfilter.FilterrefRewriter;
import ch.ungleich.uncloud.hook.nwfilter.Templates;
import ch.ungleich.uncloud.tests.lab.DomainXml;
import ch.ungleich.uncloud.tests.lab.FrameBatch;
import ch.ungleich.uncloud.tests.lab.FrameToolExtension;
import ch.ungleich.uncloud.tests.lab.Guest;
import ch.ungleich.uncloud.tests.lab.NetnsLab;
import ch.ungleich.uncloud.tests.lab.PrivateLibvirtd;
import ch.ungleich.uncloud.tests.lab.Proc;
import ch.ungleich.uncloud.tests.lab.Verdict;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * The nwfilter backend judged by the same frames as the nft backend: a private libvirtd in the lab's
 * hypervisor namespace, our filters defined by {@code uncloud-hook nwfilter install}, each NIC's
 * {@code <filterref>} exactly as the hook's {@code migrate begin} writes it, bound by libvirt to the
 * lab's veth port with {@code virsh nwfilter-binding-create} (issued by the test, never the hook).
 *
 * <p>The expected verdict of every frame is the nft backend's ({@link FrameMatrix}), except the
 * frames in {@link #LIMITATIONS}: what nwfilter cannot express. Those are asserted too, so the list in
 * docs/nwfilter.md stays exact: if libvirt learns to drop one of them, this test fails until it is removed.
 */
class NwfilterFrameMatrixTest {
  /** Frames nft drops and nwfilter delivers, with the reason (docs/nwfilter.md's limitations list). */
  static final Map<String, String> LIMITATIONS = new LinkedHashMap<>();

  static {
    String na = "nwfilter cannot match the ICMPv6 neighbor advertisement target: an NA from the VM's own"
        + " source address may claim any address";
    LIMITATIONS.put("ndp-na-forged-target", na);
    LIMITATIONS.put("ndp-na-forged-target-behind-hop-by-hop", na);
    LIMITATIONS.put("ndp-na-forged-target-behind-destopt", na);
    LIMITATIONS.put("ndp-na-forged-target-behind-hbh-and-destopt", na);
    LIMITATIONS.put("ndp-na-gateway-target-fe80-1-from-own-ll", na);
    String dad = "nwfilter cannot match the neighbor solicitation target: a DAD probe from :: may name any"
        + " address (and so make another host's duplicate address detection fail)";
    LIMITATIONS.put("ndp-dad-ns-for-gateway-fe80-1", dad);
    LIMITATIONS.put("ndp-dad-ns-for-foreign-address", dad);
    LIMITATIONS.put("ndp-na-too-short-for-its-target", "nwfilter cannot read the neighbor advertisement target,"
        + " so it cannot see that the target is missing either (the nft backend drops an NA too short for one)");
    String padded = "ebtables reads past the end of the IPv6 packet: bytes the VM appends to the frame (an Ethernet"
        + " trailer, which receivers discard) are read as the missing upper-layer header, and nwfilter has no"
        + " payload-length attribute. uncloud-no-ipv6-cut-header drops a header cut off at the frame's end, not one"
        + " a trailer fakes (every frame of this matrix carries a 13-byte trailer)";
    LIMITATIONS.put("frag-ra-first-fragment-ends-at-fragment-header", padded);
    LIMITATIONS.put("frag-ra-behind-destopt-cut-padded-with-fake-header", padded);
    String atomic = "ebtables' ipv6 match skips a fragment header with offset 0 on its way to the upper-layer"
        + " protocol and no nwfilter attribute reads the fragment header: an atomic fragment looks unfragmented,"
        + " so an ND message from the VM's own source passes as one (RFC 6980 receivers, Linux with"
        + " suppress_frag_ndisc = 1, the default, drop it)";
    for (String name : List.of("frag-atomic-ndp-na-own-global", "frag-atomic-ndp-ns-from-own-link-local",
        "frag-atomic-ndp-dad-ns-own-address", "frag-atomic-ndp-rs-from-link-local")) {
      LIMITATIONS.put(name, atomic);
    }
    LIMITATIONS.put("frag-ipv4-dhcp-offer-first-fragment-without-udp-header", "nwfilter's ip match has no fragment"
        + " offset: a first IPv4 fragment without a UDP header and a later fragment look the same (neither has"
        + " readable ports), and later fragments must pass");
  }

  @RegisterExtension static final FrameToolExtension FRAMES = new FrameToolExtension();

  @BeforeAll
  static void hookIsBuilt() {
    NetnsLab.jar(); // fail fast with a clear message if the hook is not built
  }

  static Verdict nwfilterVerdict(FrameMatrix.Case c) {
    return LIMITATIONS.containsKey(c.name()) ? DELIVERED : c.expected();
  }

  // a NIC without metadata (unlisted = deny) and one on a host with unlisted = mac-only
  static final Guest UNLISTED = Guest.macOnly("52:54:00:aa:bb:02", "192.0.2.20", "2001:db8:0:1::20");
  static final Guest MAC_ONLY = Guest.macOnly("52:54:00:aa:bb:03", "192.0.2.30", "2001:db8:0:1::30");
  // a NIC with metadata on a host with link_local = any and dhcp_client = no
  static final Guest SETTINGS = new Guest("52:54:00:aa:bb:04", "192.0.2.40", "2001:db8:0:1::40", "2001:db8:1240::/64");

  @TestFactory
  Stream<DynamicTest> frameMatrix() {
    List<FrameMatrix.Case> cases = FrameMatrix.cases();
    List<Probe> probes = new ArrayList<>();
    Map<String, FrameBatch.Outcome> got;
    String rules;
    Guest g = FrameMatrix.GUEST;
    try (NetnsLab lab = NetnsLab.create("n", List.of(g.mac(), UNLISTED.mac(), MAC_ONLY.mac(), SETTINGS.mac()));
        PrivateLibvirtd lv = PrivateLibvirtd.start(lab.hv(), NetnsLab.PREFIX, null)) {
      long t0 = System.nanoTime();
      System.err.printf("nwfilter matrix: libvirtd up%n");
      Proc.Result install = cli(lab, "nwfilter", "install", "--connect", lv.uri());
      assertEquals(Templates.all().size(), install.out().lines().filter(l -> l.startsWith("defined ")).count(), install.describe());

      System.err.printf("nwfilter matrix: nwfilter install %d ms%n", (System.nanoTime() - t0) / 1_000_000);
      lab.config("backend = nwfilter");
      bind(lab, lv, FrameMatrix.domain(), 0);
      bind(lab, lv, DomainXml.domain("ucn-unlisted").unlistedNic(UNLISTED.mac(), "vnet1"), 0);
      lab.config("backend = nwfilter", "unlisted = mac-only");
      bind(lab, lv, DomainXml.domain("ucn-mac-only").unlistedNic(MAC_ONLY.mac(), "vnet2"), 0);
      lab.config("backend = nwfilter", "link_local = any", "dhcp_client = no");
      bind(lab, lv, DomainXml.domain("ucn-settings")
          .nic(SETTINGS.mac(), "vnet3", SETTINGS.ip4(), SETTINGS.ip6(), SETTINGS.prefix6()), 0);
      Proc.Result list = lv.virsh("nwfilter-binding-list").ok();
      assertTrue(list.out().contains("vnet0") && list.out().contains("vnet2"), list.describe());

      FrameBatch b = FRAMES.tool().batch(lab);
      for (FrameMatrix.Case c : cases) {
        b.add(c.name(), c.from() == FrameMatrix.From.VM ? lab.vm(0) : lab.injector(), g, c.expr());
      }
      probes.addAll(unlistedProbes(lab.vm(1)));
      probes.addAll(macOnlyProbes(lab.vm(2)));
      probes.addAll(settingsProbes(lab.vm(3)));
      for (Probe p : probes) {
        b.add(p.name(), p.port(), p.guest(), p.expr());
      }
      long t1 = System.nanoTime();
      got = b.run();
      System.err.printf("nwfilter matrix: bindings %d ms, %d frames %d ms%n", (t1 - t0) / 1_000_000,
          cases.size() + probes.size(), (System.nanoTime() - t1) / 1_000_000);
      rules = lab.ruleset();
    }
    Stream<DynamicTest> matrix = FrameMatrix.verdicts(cases, got, NwfilterFrameMatrixTest::nwfilterVerdict,
        "--- rules in the hypervisor namespace\n" + rules);
    Stream<DynamicTest> others = probes.stream().map(p -> DynamicTest.dynamicTest(p.name() + ": " + p.expected(),
        () -> {
          FrameBatch.Outcome o = got.get(p.name());
          if (o.verdict() != p.expected()) {
            throw new AssertionError("expected " + p.expected() + ", observed " + o.describe() + "\n" + rules);
          }
        }));
    return Stream.concat(matrix, others);
  }

  /** A frame outside the matrix with its expected verdict. */
  record Probe(String name, NetnsLab.Port port, Guest guest, String expr, Verdict expected) {}

  static final String UDP = FrameMatrix.UDP;

  /** unlisted = deny: own MAC and own EUI-64 link-local only (the nft test's unlisted scenario). */
  static List<Probe> unlistedProbes(NetnsLab.Port u) {
    Guest g = UNLISTED;
    return List.of(
        new Probe("unlisted-own-link-local-udp", u, g, FrameMatrix.TO_GW + "IPv6(src=LL, dst=GW_LL)/" + UDP, DELIVERED),
        new Probe("unlisted-na-own-link-local", u, g, FrameMatrix.TO_GW + "IPv6(src=LL, dst=GW_LL, hlim=255)"
            + "/ICMPv6ND_NA(tgt=LL, R=0, S=1, O=1)/ICMPv6NDOptDstLLAddr(lladdr=MAC)", DELIVERED),
        new Probe("unlisted-arp-probe", u, g, FrameMatrix.TO_ALL
            + "ARP(op=1, hwsrc=MAC, psrc='0.0.0.0', hwdst='00:00:00:00:00:00', pdst=IP4)", DELIVERED),
        new Probe("unlisted-ipv4", u, g, FrameMatrix.TO_GW + FrameMatrix.IP4_UDP, DROPPED),
        new Probe("unlisted-arp-with-an-ipv4", u, g, FrameMatrix.TO_ALL
            + "ARP(op=1, hwsrc=MAC, psrc=IP4, hwdst='00:00:00:00:00:00', pdst=GW4)", DROPPED),
        new Probe("unlisted-ipv6-global", u, g, FrameMatrix.TO_GW + "IPv6(src=IP6, dst=GW6)/" + UDP, DROPPED),
        new Probe("unlisted-dhcpv4-discover", u, g, FrameMatrix.TO_ALL
            + "IP(src='0.0.0.0', dst='255.255.255.255')/UDP(sport=68, dport=67)/" + FrameMatrix.DHCP4_DISCOVER,
            DROPPED),
        // the placeholder 0.0.0.0/32 of a NIC without IPv4 must not let 0.0.0.0 through
        new Probe("unlisted-ipv4-from-0.0.0.0", u, g, FrameMatrix.TO_ALL
            + "IP(src='0.0.0.0', dst='255.255.255.255')/UDP(sport=5000, dport=5001)/Raw(b'x')", DROPPED),
        new Probe("unlisted-foreign-link-local", u, g, FrameMatrix.TO_GW + "IPv6(src=FOREIGN_LL, dst=GW_LL)/" + UDP,
            DROPPED),
        new Probe("unlisted-spoofed-mac", u, g, "Ether(src=SPOOF_MAC, dst=GW_MAC)/IPv6(src=LL, dst=GW_LL)/" + UDP,
            DROPPED),
        new Probe("unlisted-ra", u, g, FrameMatrix.NA_TO_ALL + FrameMatrix.RA, DROPPED),
        new Probe("unlisted-rarp-qemu-announce-self", u, g, FrameMatrix.ANNOUNCE, DELIVERED),
        new Probe("unlisted-rarp-reply", u, g, FrameMatrix.ANNOUNCE.replace("op=3", "op=4"), DROPPED));
  }

  /** unlisted = mac-only: own MAC (also as ARP sender), any IP; no servers, no other ethertypes. */
  static List<Probe> macOnlyProbes(NetnsLab.Port m) {
    Guest g = MAC_ONLY;
    return List.of(
        new Probe("mac-only-any-ipv4", m, g, FrameMatrix.TO_GW + "IP(src=SPOOF4, dst=GW4)/" + UDP, DELIVERED),
        new Probe("mac-only-any-ipv6", m, g, FrameMatrix.TO_GW + "IPv6(src=SPOOF6, dst=GW6)/" + UDP, DELIVERED),
        new Probe("mac-only-arp-any-ip", m, g, FrameMatrix.TO_ALL
            + "ARP(op=1, hwsrc=MAC, psrc=SPOOF4, hwdst='00:00:00:00:00:00', pdst=GW4)", DELIVERED),
        new Probe("mac-only-dhcpv4-discover", m, g, FrameMatrix.TO_ALL
            + "IP(src='0.0.0.0', dst='255.255.255.255')/UDP(sport=68, dport=67)/" + FrameMatrix.DHCP4_DISCOVER,
            DELIVERED),
        new Probe("mac-only-spoofed-mac", m, g, "Ether(src=SPOOF_MAC, dst=GW_MAC)/IP(src=IP4, dst=GW4)/" + UDP,
            DROPPED),
        new Probe("mac-only-arp-foreign-sender-mac", m, g, FrameMatrix.TO_ALL
            + "ARP(op=1, hwsrc=SPOOF_MAC, psrc=IP4, hwdst='00:00:00:00:00:00', pdst=GW4)", DROPPED),
        new Probe("mac-only-ra", m, g, FrameMatrix.NA_TO_ALL + FrameMatrix.RA, DROPPED),
        new Probe("mac-only-dhcpv4-server", m, g, FrameMatrix.TO_ALL
            + "IP(src=IP4, dst='255.255.255.255')/UDP(sport=67, dport=68)"
            + "/BOOTP(op=2, yiaddr=SPOOF4, chaddr=mac2str(SPOOF_MAC), xid=1)"
            + "/DHCP(options=[('message-type', 'offer'), 'end'])", DROPPED),
        new Probe("mac-only-dhcpv6-server", m, g, FrameMatrix.TO_GW
            + "IPv6(src=LL, dst=FOREIGN_LL)/UDP(sport=547, dport=546)/DHCP6_Advertise(trid=0x1234)", DROPPED),
        new Probe("mac-only-vlan-tagged", m, g, FrameMatrix.TO_GW + "Dot1Q(vlan=10)/" + FrameMatrix.IP4_UDP, DROPPED),
        new Probe("mac-only-rarp-qemu-announce-self", m, g, FrameMatrix.ANNOUNCE, DELIVERED),
        new Probe("mac-only-rarp-foreign-target-hw", m, g, FrameMatrix.ANNOUNCE.replace("hwdst=MAC", "hwdst=SPOOF_MAC"),
            DROPPED),
        new Probe("mac-only-frag-ra-behind-destopt-cut", m, g, FrameMatrix.firstFragment(FrameMatrix.ALL_NODES,
            "IPv6(src=LL, dst='ff02::1', hlim=255)", 60, FrameMatrix.RA_BEHIND_LONG_DESTOPT, 64), DROPPED),
        new Probe("mac-only-ipv6-fragmented-udp-2of2", m, g, FrameMatrix.frag(FrameMatrix.FRAG_UDP6, 1), DELIVERED));
  }

  /** link_local = any, dhcp_client = no (the nft test's host-settings scenario). */
  static List<Probe> settingsProbes(NetnsLab.Port p) {
    Guest g = SETTINGS;
    return List.of(
        new Probe("settings-legit-ipv4", p, g, FrameMatrix.TO_GW + FrameMatrix.IP4_UDP, DELIVERED),
        new Probe("settings-foreign-link-local", p, g, FrameMatrix.TO_GW + "IPv6(src=FOREIGN_LL, dst=GW_LL)/" + UDP,
            DELIVERED),
        new Probe("settings-na-for-gateway-fe80-1-is-the-cost", p, g, FrameMatrix.NA_TO_ALL
            + "ICMPv6ND_NA(tgt=GW_LL, R=1, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr=MAC)", DELIVERED),
        new Probe("settings-dhcpv4-discover", p, g, FrameMatrix.TO_ALL
            + "IP(src='0.0.0.0', dst='255.255.255.255')/UDP(sport=68, dport=67)/" + FrameMatrix.DHCP4_DISCOVER,
            DROPPED),
        new Probe("settings-spoofed-ipv4", p, g, FrameMatrix.TO_GW + "IP(src=SPOOF4, dst=GW4)/" + UDP, DROPPED),
        new Probe("settings-global-outside-prefix", p, g, FrameMatrix.TO_GW + "IPv6(src=OUTSIDE6, dst=GW6)/" + UDP,
            DROPPED));
  }

  /** The hook's own filterref for NIC {@code nic} (its {@code migrate begin} output), bound to the NIC's port. */
  static void bind(NetnsLab lab, PrivateLibvirtd lv, DomainXml dom, int nic) {
    Proc.Result r = lab.hook(dom, "migrate", "begin");
    assertEquals(0, r.exit(), r.describe());
    String xml = r.out();
    FilterrefRewriter.Nic n = FilterrefRewriter.scan(xml).get(nic);
    assertTrue(n.hasFilterref(), "migrate begin wrote no filterref:\n" + xml);
    DomainXml.Nic d = dom.nics().get(nic);
    String binding = "<filterbinding>\n  <owner><name>" + dom.name() + "</name><uuid>" + dom.uuid()
        + "</uuid></owner>\n  <portdev name='" + d.tap() + "'/>\n  <mac address='" + d.mac() + "'/>\n  "
        + xml.substring(n.filterrefStart(), n.filterrefEnd()) + "\n</filterbinding>\n";
    Path f = lab.dir().resolve("binding-" + d.tap() + ".xml");
    try {
      Files.writeString(f, binding);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    lv.virsh("nwfilter-binding-create", f.toString()).ok();
  }

  /** {@code uncloud-hook ARGS} (the CLI) as root on the host; it reaches libvirtd through its socket. */
  static Proc.Result cli(NetnsLab lab, String... args) {
    List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
        "-jar", NetnsLab.jar().toString()));
    cmd.addAll(List.of(args));
    Proc.Result r = Proc.run(Duration.ofSeconds(120), null, cmd);
    return r.ok();
  }
}
