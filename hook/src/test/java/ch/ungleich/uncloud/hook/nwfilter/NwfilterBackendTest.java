package ch.ungleich.uncloud.hook.nwfilter;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.AddressSet;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.IpPrefix;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import java.util.List;
import org.junit.jupiter.api.Test;

class NwfilterBackendTest {
  static final String NWF = "backend = nwfilter\n";

  static String domain(String metadata, String nicExtra) {
    return "<domain type='qemu'><name>web01</name><uuid>6d696776-6d31-4000-8000-000000000001</uuid>"
        + (metadata == null ? "" : "<metadata><uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'>"
            + metadata + "</uc:firewall></metadata>")
        + "<devices><interface type='bridge'><mac address='52:54:00:aa:bb:01'/><source bridge='br0'/>"
        + nicExtra + "</interface></devices></domain>";
  }

  static DomainPolicy policy(String xml, String conf) {
    return PolicyBuilder.build(DomainReader.read(xml), Config.parse(conf, "test"));
  }

  static FilterRef expected(String metadata, String conf) {
    return NwfilterBackend.expected(policy(domain(metadata, ""), conf).nics().get(0));
  }

  static String ips(String... a) {
    StringBuilder b = new StringBuilder("<uc:interface mac='52:54:00:aa:bb:01'>");
    for (String x : a) {
      b.append("<uc:ip address='").append(x).append("'/>");
    }
    return b.append("</uc:interface>").toString();
  }

  @Test
  void parametersAreTheMetadataAsCidrs() {
    FilterRef f = expected(ips("192.0.2.10", "2001:db8:1234::/64", "198.51.100.0/24", "fe80::1"), NWF);
    assertEquals("uncloud-clean-traffic", f.filter());
    assertEquals(List.of("192.0.2.10", "198.51.100.0"), f.values("IPV4"));
    assertEquals(List.of("32", "24"), f.values("IPV4_PREFIX"));
    assertEquals(List.of("2001:db8:1234::", "fe80::1", "fe80::5054:ff:feaa:bb01"), f.values("IPV6"));
    assertEquals(List.of("64", "128", "128"), f.values("IPV6_PREFIX"));
    assertEquals(List.of("52:54:00:aa:bb:01"), f.values("MAC"));
    // libvirt's order: by name, list values in order
    assertEquals(List.of("IPV4", "IPV4", "IPV4_PREFIX", "IPV4_PREFIX", "IPV6", "IPV6", "IPV6", "IPV6_PREFIX",
        "IPV6_PREFIX", "IPV6_PREFIX", "MAC"), f.params().stream().map(FilterRef.Param::name).toList());
  }

  @Test
  void rangesAreCutIntoTheFewestPrefixes() {
    // .7 .8 .9 merge into one range 7-9: /32 + /31
    FilterRef f = expected(ips("198.51.100.7", "198.51.100.8", "198.51.100.9"), NWF);
    assertEquals(List.of("198.51.100.7", "198.51.100.8"), f.values("IPV4"));
    assertEquals(List.of("32", "31"), f.values("IPV4_PREFIX"));
    // adjacent prefixes 192.0.2.0/25 + 192.0.2.128/25 become one /24
    f = expected(ips("192.0.2.0/25", "192.0.2.128/25", "192.0.2.5"), NWF);
    assertEquals(List.of("192.0.2.0"), f.values("IPV4"));
    assertEquals(List.of("24"), f.values("IPV4_PREFIX"));
  }

  @Test
  void cidrsOfArbitraryRanges() {
    AddressSet s = AddressSet.of(false, List.of(IpPrefix.parse("192.0.2.1"), IpPrefix.parse("192.0.2.2/31"),
        IpPrefix.parse("192.0.2.4/30"), IpPrefix.parse("192.0.2.8")));
    // 1..8 = 1/32, 2/31, 4/30, 8/32
    assertEquals("[192.0.2.1, 192.0.2.2/31, 192.0.2.4/30, 192.0.2.8]", NwfilterBackend.cidrs(s).toString());
    AddressSet all = AddressSet.of(true, List.of(IpPrefix.parse("::/0")));
    assertEquals("[::/0]", NwfilterBackend.cidrs(all).toString());
  }

  @Test
  void noIpv4IsThePlaceholderAndNoDhcpForUnlisted() {
    FilterRef f = expected(ips("2001:db8::10"), NWF);
    assertEquals("uncloud-clean-traffic", f.filter());
    assertEquals(List.of("0.0.0.0"), f.values("IPV4"));
    assertEquals(List.of("32"), f.values("IPV4_PREFIX"));
    // unlisted = deny (default): own MAC and EUI-64 link-local only, not even the DHCP discover
    f = expected(null, NWF);
    assertEquals("uncloud-clean-traffic-no-dhcp", f.filter());
    assertEquals(List.of("fe80::5054:ff:feaa:bb01"), f.values("IPV6"));
  }

  @Test
  void hostSettingsPickTheFilter() {
    assertEquals("uncloud-clean-traffic-no-dhcp", expected(ips("192.0.2.10"), NWF + "dhcp_client = no\n").filter());
    assertEquals(List.of("fe80::"), expected(ips("192.0.2.10"), NWF + "link_local = any\n").values("IPV6"));
    assertEquals(List.of("10"), expected(ips("192.0.2.10"), NWF + "link_local = any\n").values("IPV6_PREFIX"));
    FilterRef macOnly = expected(null, NWF + "unlisted = mac-only\n");
    assertEquals("uncloud-mac-only", macOnly.filter());
    assertEquals(List.of(new FilterRef.Param("MAC", "52:54:00:aa:bb:01")), macOnly.params());
    assertNull(expected(null, NWF + "unlisted = allow\n"));
    assertNull(expected("<uc:interface mac='52:54:00:aa:bb:01' trusted='true'/>", NWF));
  }

  static String withRules(String rules, String... a) {
    return ips(a).replace("</uc:interface>", rules + "</uc:interface>");
  }

  @Test
  void ingressAndEgressPickTheRootAndCarryTheAllows() {
    String in = "<uc:ingress><uc:allow protocol='tcp' port='22' from='198.51.100.0/24'/><uc:allow protocol='icmpv6'/>"
        + "</uc:ingress>";
    FilterRef f = expected(withRules(in, "192.0.2.10"), NWF);
    assertEquals("uncloud-clean-traffic-in", f.filter());
    assertEquals(List.of("198.51.100.0"), f.values("IN_TCP4"));
    assertEquals(List.of("24"), f.values("IN_TCP4_PREFIX"));
    assertEquals(List.of("22"), f.values("IN_TCP4_PORT"));
    assertEquals(List.of("22"), f.values("IN_TCP4_PORTEND"));
    // empty lists: the placeholder (ports 0-65535 for tcp/udp)
    assertEquals(List.of("ff00::"), f.values("IN_TCP6"));
    assertEquals(List.of("128"), f.values("IN_TCP6_PREFIX"));
    assertEquals(List.of("0"), f.values("IN_UDP4_PORT"));
    assertEquals(List.of("65535"), f.values("IN_UDP4_PORTEND"));
    // icmpv6 without a peer: any IPv6 source; no ports for icmp and any
    assertEquals(List.of("::"), f.values("IN_ICMP6"));
    assertEquals(List.of("0"), f.values("IN_ICMP6_PREFIX"));
    assertEquals(List.of(), f.values("IN_ICMP6_PORT"));
    assertEquals(List.of(), f.values("OUT_ANY4"));
    assertEquals("uncloud-clean-traffic-out", expected(withRules("<uc:egress/>", "192.0.2.10"), NWF).filter());
    assertEquals("uncloud-clean-traffic-no-dhcp-inout",
        expected(withRules("<uc:egress/>", "192.0.2.10"), NWF + "ingress = deny\ndhcp_client = no\n").filter());
    // trusted: no filterref at all, rules or not
    assertNull(expected(withRules(in, "192.0.2.10").replace("<uc:interface ", "<uc:interface trusted='true' "), NWF));
    // a changed rule is a difference in words
    FilterRef other = expected(withRules(in.replace("port='22'", "port='2222'"), "192.0.2.10"), NWF);
    NwfilterBackend.NicChange c = plan(withRules(in, "192.0.2.10"), render(other), NWF).get(0);
    assertEquals(NwfilterBackend.Kind.SET, c.kind());
    assertEquals("ingress [tcp 198.51.100.0/24 2222, icmpv6 any] should be [tcp 198.51.100.0/24 22, icmpv6 any]",
        NwfilterBackend.difference(c));
    c = plan(ips("192.0.2.10"), render(f), NWF).get(0);
    assertEquals("has uncloud-clean-traffic-in, needs uncloud-clean-traffic", NwfilterBackend.difference(c));
  }

  @Test
  void notBridgedMeansNoFilterref() {
    String xml = domain(ips("192.0.2.10"), "").replace("type='bridge'", "type='direct'");
    assertNull(NwfilterBackend.expected(policy(xml, NWF).nics().get(0)));
  }

  static List<NwfilterBackend.NicChange> plan(String metadata, String nicExtra, String conf) {
    String xml = domain(metadata, nicExtra);
    Domain d = DomainReader.read(xml);
    DomainPolicy p = PolicyBuilder.build(d, Config.parse(conf, "test"));
    return NwfilterBackend.plan(p, d, Config.parse(conf, "test").backend().equals("nwfilter"));
  }

  static String render(FilterRef f) {
    return f.render("", "");
  }

  @Test
  void planKeepsWhatIsRightAndSetsWhatIsNot() {
    FilterRef want = expected(ips("192.0.2.10"), NWF);
    assertEquals(NwfilterBackend.Kind.SET, plan(ips("192.0.2.10"), "", NWF).get(0).kind());
    assertEquals(NwfilterBackend.Kind.KEEP, plan(ips("192.0.2.10"), render(want), NWF).get(0).kind());
    // parameter order inside a name group is significant (pairs), across names it is not
    String shuffled = "<filterref filter='uncloud-clean-traffic'><parameter name='MAC' value='52:54:00:aa:bb:01'/>"
        + "<parameter name='IPV6_PREFIX' value='128'/><parameter name='IPV4' value='192.0.2.10'/>"
        + "<parameter name='IPV6' value='fe80::5054:ff:feaa:bb01'/><parameter name='IPV4_PREFIX' value='32'/>"
        + "</filterref>";
    assertEquals(NwfilterBackend.Kind.KEEP, plan(ips("192.0.2.10"), shuffled, NWF).get(0).kind());
    NwfilterBackend.NicChange stale = plan(ips("192.0.2.11"), render(want), NWF).get(0);
    assertEquals(NwfilterBackend.Kind.SET, stale.kind());
    assertEquals("IPv4 [192.0.2.10/32] should be [192.0.2.11/32]", NwfilterBackend.difference(stale));
  }

  @Test
  void planRemovesOursWhenNotFilteredAndUnderNft() {
    FilterRef want = expected(ips("192.0.2.10"), NWF);
    NwfilterBackend.NicChange c =
        plan("<uc:interface mac='52:54:00:aa:bb:01' trusted='true'/>", render(want), NWF).get(0);
    assertEquals(NwfilterBackend.Kind.REMOVE, c.kind());
    assertEquals("has uncloud-clean-traffic but is not filtered (trusted)", NwfilterBackend.difference(c));
    c = plan(ips("192.0.2.10"), render(want), "backend = nft\n").get(0);
    assertEquals(NwfilterBackend.Kind.REMOVE, c.kind());
    assertEquals("has uncloud-clean-traffic but is not filtered (metadata, backend = nft)",
        NwfilterBackend.difference(c));
    // nft: nothing of ours, nothing to do; someone else's filterref is theirs
    assertEquals(NwfilterBackend.Kind.KEEP, plan(ips("192.0.2.10"), "", "backend = nft\n").get(0).kind());
    assertEquals(NwfilterBackend.Kind.KEEP,
        plan(ips("192.0.2.10"), "<filterref filter='clean-traffic'/>", "backend = nft\n").get(0).kind());
    assertEquals(NwfilterBackend.Kind.KEEP, plan("<uc:interface mac='52:54:00:aa:bb:01' trusted='true'/>",
        "<filterref filter='clean-traffic'/>", NWF).get(0).kind());
  }

  @Test
  void foreignFilterrefOnAFilteredNicIsRefused() {
    UncloudException e = assertThrows(UncloudException.class,
        () -> plan(ips("192.0.2.10"), "<filterref filter='clean-traffic'><parameter name='IP' value='192.0.2.10'/>"
            + "</filterref>", NWF));
    assertEquals("web01 nic0 52:54:00:aa:bb:01: has <filterref filter='clean-traffic'>, which uncloud-hook does"
        + " not manage; remove it (uncloud-clean-traffic replaces it) or mark the interface trusted=\"true\"",
        e.getMessage());
  }

  @Test
  void mismatchIsOneLineWithTheFix() {
    List<NwfilterBackend.NicChange> p = plan(ips("192.0.2.10"), "", NWF);
    String line = NwfilterBackend.mismatch(policy(domain(ips("192.0.2.10"), ""), NWF), p);
    assertEquals("web01: filterrefs disagree with the metadata: nic0 52:54:00:aa:bb:01: has no filterref, needs"
        + " uncloud-clean-traffic; run 'uncloud-hook sync web01'", line);
    assertTrue(line.lines().count() == 1);
  }
}
