package ch.ungleich.uncloud.hook.source;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.Mode;
import ch.ungleich.uncloud.libvirtxml.DomainReader;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import ch.ungleich.uncloud.libvirtxml.domain.Metadata;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class EtcdValueTest {
  static final String KEY = "distributed-firewall/vm/6d696776-6d31-4000-8000-000000000001";
  static final String MAC1 = "52:54:00:aa:bb:01";
  static final String MAC2 = "52:54:00:aa:bb:02";

  static Domain domain(String... nics) {
    StringBuilder b = new StringBuilder("<domain type='qemu'><name>web01</name><uuid>6d696776-6d31-4000-8000-000000000001</uuid><devices>");
    for (String n : nics) {
      String[] p = n.split(" ");
      b.append("<interface type='").append(p[0]).append("'><mac address='").append(p[1])
          .append("'/><source bridge='br0'/><target dev='vnet").append(p[1].substring(15)).append("'/></interface>");
    }
    return DomainReader.read(b.append("</devices></domain>").toString());
  }

  static DomainPolicy policy(String json, Domain d) {
    Domain withValue = new Domain();
    withValue.name = d.name;
    withValue.uuid = d.uuid;
    withValue.devices = d.devices;
    withValue.metadata = new Metadata();
    withValue.metadata.firewall = EtcdValue.parse(json, d, KEY);
    return PolicyBuilder.build(withValue, Config.defaults());
  }

  static String reject(String json, Domain d) {
    UncloudException e = assertThrows(UncloudException.class, () -> policy(json, d), json);
    assertEquals(1, e.exitCode());
    assertFalse(e.getMessage().contains("\n"), e.getMessage());
    assertTrue(e.getMessage().startsWith("web01 "), e.getMessage());
    return e.getMessage();
  }

  @Test
  void theSeedFormIsTheOneBridgedNic() {
    DomainPolicy p = policy("{\"ipv6\": [\"2001:db8:111:b::/64\", \"2001:db8:101:b::/64\"], \"ipv4\": [\"192.0.2.1/32\"]}",
        domain("bridge " + MAC1, "direct " + MAC2));
    assertEquals(Mode.FILTER, p.nics().get(0).mode());
    assertEquals(List.of("192.0.2.1"), p.nics().get(0).ipv4().elements());
    assertEquals(List.of("2001:db8:101:b::/64", "2001:db8:111:b::/64", "fe80::5054:ff:feaa:bb01"),
        p.nics().get(0).ipv6().elements());
    assertEquals("metadata", p.nics().get(0).reason());
    assertEquals("unlisted=deny", p.nics().get(1).reason());
  }

  @Test
  void theSeedFormRefusesSeveralBridgedNics() {
    String m = reject("{\"ipv4\": [\"192.0.2.1\"]}", domain("bridge " + MAC1, "network " + MAC2));
    assertTrue(m.contains(KEY) && m.contains("has 2") && m.contains("interfaces"), m);
    assertTrue(reject("{\"ipv4\": [\"192.0.2.1\"]}", domain("direct " + MAC1)).contains("has 0"));
  }

  @Test
  void thePerNicFormCarriesTrusted() {
    DomainPolicy p = policy("{\"interfaces\": {\"52:54:00:AA:BB:02\": {\"trusted\": true}, \"" + MAC1
        + "\": {\"ipv4\": [\"198.51.100.7\"], \"ipv6\": [], \"trusted\": false}}}", domain("bridge " + MAC1, "network " + MAC2));
    assertEquals(Mode.FILTER, p.nics().get(0).mode());
    assertEquals(List.of("198.51.100.7"), p.nics().get(0).ipv4().elements());
    assertEquals(Mode.OPEN, p.nics().get(1).mode());
    assertEquals("trusted", p.nics().get(1).reason());
  }

  /** Every golden domain's metadata, written as etcd's per-NIC form and read back, gives the same policy. */
  @TestFactory
  Stream<DynamicTest> goldenMetadataRoundTrips() throws Exception {
    return Files.list(Path.of("src/test/resources/golden")).sorted().map(dir -> DynamicTest.dynamicTest(
        dir.getFileName().toString(), () -> {
          Domain d = DomainReader.read(Files.readString(dir.resolve("domain.xml")));
          Config c = Files.exists(dir.resolve("host.conf"))
              ? Config.parse(Files.readString(dir.resolve("host.conf")), "host.conf") : Config.defaults();
          Firewall fw = d.metadata == null ? null : d.metadata.firewall;
          if (fw == null) {
            return;
          }
          DomainPolicy fromXml = PolicyBuilder.build(d, c);
          Domain viaEtcd = DomainReader.read(Files.readString(dir.resolve("domain.xml")));
          viaEtcd.metadata.firewall = EtcdValue.parse(EtcdValue.render(fw), d, KEY);
          assertEquals(fromXml, PolicyBuilder.build(viaEtcd, c));
        }));
  }

  @Test
  void renderIsThePerNicForm() {
    Domain d = DomainReader.read("<domain><name>x</name><uuid>6d696776-6d31-4000-8000-000000000001</uuid><metadata>"
        + "<uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'><uc:interface mac='52:54:00:AA:bb:01'>"
        + "<uc:ip address='192.0.2.1'/><uc:ip address='2001:db8::/64'/></uc:interface>"
        + "<uc:interface mac='52:54:00:aa:bb:02' trusted='true'/></uc:firewall></metadata></domain>");
    assertEquals("{\"interfaces\":{\"52:54:00:aa:bb:01\":{\"ipv4\":[\"192.0.2.1\"],\"ipv6\":[\"2001:db8::/64\"]},"
        + "\"52:54:00:aa:bb:02\":{\"ipv4\":[],\"ipv6\":[],\"trusted\":true}}}", EtcdValue.render(d.metadata.firewall));
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(
      delimiter = '|',
      textBlock = """
        not JSON                | {"ipv4": ["192.0.2.1"]                             | not valid JSON
        trailing data           | {"ipv4": []} {}                                    | data after
        empty                   |                                                    | empty
        array at the top        | ["192.0.2.1"]                                      | must be a JSON object, not an array
        string at the top       | "192.0.2.1"                                        | not the string
        unknown key             | {"ipv4": [], "ipv5": []}                           | unknown key "ipv5"
        ipv4 not an array       | {"ipv4": "192.0.2.1"}                              | must be an array of strings
        number in ipv4          | {"ipv4": [3221225985]}                             | found the number
        null in ipv6            | {"ipv6": [null]}                                   | found null
        ipv4 null               | {"ipv4": null}                                     | not null
        v6 under ipv4           | {"ipv4": ["2001:db8::1"]}                          | an IPv6 address
        v4 under ipv6           | {"ipv6": ["192.0.2.1"]}                            | an IPv4 address
        not an address          | {"ipv4": ["192.0.2.300"]}                          | is not an IPv4 or IPv6 address
        host bits               | {"ipv4": ["192.0.2.1/24"]}                         | has host bits set
        loopback                | {"ipv4": ["127.0.0.1"]}                            | loopback
        too broad               | {"ipv4": ["10.0.0.0/7"]}                           | broader than /8
        duplicate key           | {"ipv4": [], "ipv4": ["192.0.2.1"]}                | Duplicate field 'ipv4'
        mixed forms             | {"ipv4": [], "interfaces": {}}                     | unknown key "ipv4"
        interfaces array        | {"interfaces": []}                                 | keyed by MAC, not an array
        MAC not of the domain   | {"interfaces": {"52:54:00:aa:bb:09": {}}}          | is not a NIC of this domain (its NICs: 52:54:00:aa:bb:01, 52:54:00:aa:bb:02)
        not a MAC               | {"interfaces": {"52:54:00:aa:bb": {}}}             | is not a MAC address
        multicast MAC           | {"interfaces": {"53:54:00:aa:bb:01": {}}}          | multicast
        MAC twice by case       | {"interfaces": {"52:54:00:aa:bb:01": {}, "52:54:00:AA:BB:01": {}}} | listed twice
        trusted a string        | {"interfaces": {"52:54:00:aa:bb:01": {"trusted": "yes"}}} | must be true or false, not the string "yes"
        nic unknown key         | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": []}}}  | unknown key "ingress"
        nic not an object       | {"interfaces": {"52:54:00:aa:bb:01": ["192.0.2.1"]}}    | must be an object, not an array
        overlap between NICs    | {"interfaces": {"52:54:00:aa:bb:01": {"ipv4": ["192.0.2.0/24"]}, "52:54:00:aa:bb:02": {"ipv4": ["192.0.2.5"]}}} | overlaps
        control characters      | {"ipv4": ["192.0.2.1\\u000a\\u001b[2J"]}           | \\u000a\\u001b[2J
        deep nesting            | {"ipv4": [[[[[[[[[[[[["x"]]]]]]]]]]]]]}            | nesting depth
        """)
  void refusesWithOneLineNamingDomainAndWhat(String why, String json, String expected) {
    Domain d = why.equals("control characters") || json != null && json.contains("\"ipv") && !json.contains("interfaces")
        ? domain("bridge " + MAC1) : domain("bridge " + MAC1, "bridge " + MAC2);
    String m = reject(json == null ? "" : json, d);
    assertTrue(m.contains(expected.replace("\\\\", "\\")), why + ": " + m);
  }

  @Test
  void refusesHugeValuesUnread() {
    String m = reject("{\"ipv4\": [\"" + "1".repeat(EtcdValue.MAX_BYTES) + "\"]}", domain("bridge " + MAC1));
    assertTrue(m.contains("more than 65536"), m);
  }

  @Test
  void keyIsPrefixAndUuidOrName() {
    Domain d = domain("bridge " + MAC1);
    d.uuid = "6D696776-6D31-4000-8000-000000000001";
    assertEquals(KEY, AddressSource.key(d, Config.defaults()));
    assertEquals("vms/web01", AddressSource.key(d, Config.parse("etcd_prefix = vms/\netcd_vmid = name", "t")));
  }

  @Test
  void metadataSourceKeepsTheXml() {
    Domain d = domain("bridge " + MAC1);
    assertEquals(d, AddressSource.of(Config.defaults()).resolve(d));
    assertNull(AddressSource.of(Config.defaults()).client());
  }
}
