package ch.ungleich.uncloud.hook.metadata;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.Mode;
import ch.ungleich.uncloud.hook.model.NicPolicy;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

class PolicyBuilderTest {
  static final String MAC1 = "52:54:00:aa:bb:01";
  static final String MAC2 = "52:54:00:aa:bb:02";

  static String nic(String type, String mac, String tap) {
    return "<interface type='" + type + "'><mac address='" + mac + "'/><source bridge='br0'/>"
        + (tap == null ? "" : "<target dev='" + tap + "'/>") + "</interface>";
  }

  static String domain(String firewallBody, String... nics) {
    return "<domain type='qemu'><name>web01</name><uuid>6D696776-6D31-4000-8000-000000000001</uuid>"
        + (firewallBody == null ? "" : "<metadata><uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'>"
            + firewallBody + "</uc:firewall></metadata>")
        + "<devices>" + String.join("", nics) + "</devices></domain>";
  }

  static String iface(String mac, String... ips) {
    StringBuilder b = new StringBuilder("<uc:interface mac='" + mac + "'>");
    for (String ip : ips) {
      b.append("<uc:ip address='").append(ip).append("'/>");
    }
    return b.append("</uc:interface>").toString();
  }

  static DomainPolicy build(String xml) {
    return PolicyBuilder.build(DomainReader.read(xml), Config.defaults());
  }

  static DomainPolicy build(String xml, String conf) {
    return PolicyBuilder.build(DomainReader.read(xml), Config.parse(conf, "test.conf"));
  }

  static String reject(String xml) {
    UncloudException e = assertThrows(UncloudException.class, () -> build(xml));
    assertFalse(e.getMessage().contains("\n"), e.getMessage());
    return e.getMessage();
  }

  @Test
  void theIssueExample() {
    DomainPolicy p =
        build(domain(iface("52:54:00:AA:BB:01", "192.0.2.10", "2001:db8:0:1::10", "2001:db8:1234::/64"),
            nic("bridge", MAC1, "vnet0")));
    assertEquals("6d696776-6d31-4000-8000-000000000001", p.uuid());
    NicPolicy n = p.nics().get(0);
    assertEquals(Mode.FILTER, n.mode());
    assertEquals("vnet0", n.tap());
    assertEquals(List.of("192.0.2.10"), n.ipv4().elements());
    assertEquals(List.of("2001:db8:0:1::10", "2001:db8:1234::/64", "fe80::5054:ff:feaa:bb01"), n.ipv6().elements());
    assertTrue(n.hasChain());
    assertTrue(p.warnings().isEmpty());
  }

  @Test
  void listedLinkLocalsAreAddedToTheEui64One() {
    NicPolicy n = build(domain(iface(MAC1, "fe80::1234"), nic("bridge", MAC1, "vnet0"))).nics().get(0);
    assertEquals(List.of("fe80::1234", "fe80::5054:ff:feaa:bb01"), n.ipv6().elements());
  }

  @Test
  void linkLocalAnyAllowsAllOfFe80() {
    NicPolicy n = build(domain(iface(MAC1), nic("bridge", MAC1, "vnet0")), "link_local = any").nics().get(0);
    assertEquals(List.of("fe80::/10"), n.ipv6().elements());
  }

  @Test
  void unlistedNicsFollowTheHostSetting() {
    String xml = domain(null, nic("bridge", MAC1, "vnet0"), nic("network", MAC2, "vnet1"));
    NicPolicy deny = build(xml).nics().get(0);
    assertEquals(Mode.FILTER, deny.mode());
    assertEquals("unlisted=deny", deny.reason());
    assertTrue(deny.ipv4().isEmpty());
    assertEquals(List.of("fe80::5054:ff:feaa:bb01"), deny.ipv6().elements());
    assertEquals(Mode.MAC_ONLY, build(xml, "unlisted = mac-only").nics().get(1).mode());
    NicPolicy allow = build(xml, "unlisted = allow").nics().get(0);
    assertEquals(Mode.OPEN, allow.mode());
    assertTrue(allow.hasChain(), "an unfiltered NIC gets a chain that accepts, so the vm_taps guard knows it");
  }

  @Test
  void zeroSlashZeroIsRefusedEvenForATrustedNic() {
    // 0.0.0.0/0 contains 0.0.0.0/8, loopback and multicast: no NIC can own it, trusted or not
    String m = reject(domain("<uc:interface mac='" + MAC1 + "' trusted='true'><uc:ip address='0.0.0.0/0'/></uc:interface>",
        nic("bridge", MAC1, "vnet0")));
    assertTrue(m.contains("can never be a source"), m);
  }

  @Test
  void trustedNicWithRouterPrefix() {
    NicPolicy n =
        build(domain("<uc:interface mac='" + MAC1 + "' trusted='true'><uc:ip address='2001:db8::/29'/></uc:interface>",
            nic("bridge", MAC1, "vnet0"))).nics().get(0);
    assertEquals(Mode.OPEN, n.mode());
    assertEquals("trusted", n.reason());
  }

  @Test
  void nicsOffTheBridgeAreWarnedAboutNotSilentlyPassed() {
    DomainPolicy p =
        build(domain(iface("52:54:00:aa:bb:04", "192.0.2.40"),
            "<interface type='direct'><mac address='52:54:00:aa:bb:04'/><source dev='eth0' mode='bridge'/>"
                + "<target dev='macvtap0'/></interface>",
            "<interface type='bridge'><mac address='52:54:00:aa:bb:05'/><source bridge='ovsbr0'/>"
                + "<virtualport type='openvswitch'/><target dev='vnet5'/></interface>"));
    assertEquals(2, p.warnings().size());
    assertTrue(p.warnings().get(0).contains("type 'direct'") && p.warnings().get(0).contains("NOT protected"));
    assertTrue(p.warnings().get(1).contains("Open vSwitch"));
    assertFalse(p.nics().get(0).hasChain());
  }

  @Test
  void noTapYetMeansNoChain() {
    NicPolicy n = build(domain(iface(MAC1, "192.0.2.10"), nic("bridge", MAC1, null))).nics().get(0);
    assertFalse(n.hasChain());
  }

  @ParameterizedTest
  @CsvSource(
      delimiter = '|',
      value = {
        "not-an-ip | is not an IPv4 or IPv6 address",
        "192.0.2.1/24 | has host bits set; the network is 192.0.2.0/24",
        "10.0.0.0/7 | is broader than /8",
        "2001:db8::/31 | is broader than /32",
        "224.0.0.1 | multicast",
        "ff02::1 | multicast",
        "0.0.0.0 | 'this network'",
        "127.0.0.1 | loopback",
        "::1 | loopback",
        ":: | unspecified",
        "255.255.255.255 | broadcast",
        "192.168.0.0/8 | host bits",
        "::ffff:192.0.2.1 | IPv4-mapped",
      })
  void rejectsBadAddresses(String ip, String expected) {
    String m = reject(domain(iface(MAC1, ip), nic("bridge", MAC1, "vnet0")));
    assertTrue(m.contains(expected), m);
    assertTrue(m.startsWith("web01 nic0 " + MAC1 + ": "), m);
  }

  @Test
  void keepsMetadataForANicNotAttachedYetButChecksIt() {
    // set first, attach later: the entry is kept and named, the existing NIC is unaffected
    DomainPolicy p = build(domain(iface(MAC2, "192.0.2.20") + iface(MAC1, "192.0.2.10"), nic("bridge", MAC1, "vnet0")));
    assertEquals(1, p.nics().size());
    assertEquals(List.of("192.0.2.10"), p.nics().get(0).ipv4().elements());
    assertTrue(p.warnings().stream().anyMatch(w -> w.contains(MAC2 + ": no such NIC yet (its NICs: " + MAC1 + ")")),
        p.warnings().toString());
    // and its addresses are checked now, not when the NIC arrives
    String bad = reject(domain(iface(MAC2, "192.0.2.300"), nic("bridge", MAC1, "vnet0")));
    assertTrue(bad.startsWith("web01 metadata " + MAC2 + ": "), bad);
    String clash = reject(domain(iface(MAC1, "192.0.2.10") + iface(MAC2, "192.0.2.10"), nic("bridge", MAC1, "vnet0")));
    assertTrue(clash.contains("one address belongs to one NIC"), clash);
    // the NIC attached (a new hook call or the agent): the entry applies
    DomainPolicy after = build(domain(iface(MAC2, "192.0.2.20"), nic("bridge", MAC1, "vnet0"), nic("bridge", MAC2, "vnet1")));
    assertEquals(List.of("192.0.2.20"), after.nics().get(1).ipv4().elements());
    assertTrue(after.warnings().isEmpty(), after.warnings().toString());
  }

  @Test
  void rejectsDuplicateInterfaces() {
    String m = reject(domain(iface(MAC1, "192.0.2.10") + iface("52:54:00:AA:BB:01", "192.0.2.11"),
        nic("bridge", MAC1, "vnet0")));
    assertTrue(m.contains("listed twice"), m);
  }

  @Test
  void rejectsTwoNicsWithOneMac() {
    String m = reject(domain(null, nic("bridge", MAC1, "vnet0"), nic("bridge", MAC1, "vnet1")));
    assertTrue(m.contains("have the same MAC"), m);
  }

  @Test
  void rejectsConflictingClaimsAcrossNics() {
    String m = reject(domain(iface(MAC1, "2001:db8:1234::/64") + iface(MAC2, "2001:db8:1234::5"),
        nic("bridge", MAC1, "vnet0"), nic("bridge", MAC2, "vnet1")));
    assertTrue(m.contains("overlaps 2001:db8:1234::/64 of NIC nic0"), m);
  }

  @ParameterizedTest
  @ValueSource(strings = {"vnet0; flush", "a\"b", "-vnet", "verylongtapname0", "x y", "vnet0\tb", ".."})
  void rejectsHostileTapNames(String tap) {
    String m = reject(domain(iface(MAC1, "192.0.2.10"),
        "<interface type='bridge'><mac address='" + MAC1 + "'/><target dev='" + tap.replace("\"", "&quot;")
            .replace("\t", "&#9;") + "'/></interface>"));
    assertTrue(m.contains("is not a safe interface name"), m);
  }

  @Test
  void rejectsMissingUuid() {
    UncloudException e = assertThrows(UncloudException.class,
        () -> build("<domain><name>x</name><devices/></domain>"));
    assertTrue(e.getMessage().contains("no valid <uuid>"));
  }
}
