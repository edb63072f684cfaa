package ch.ungleich.uncloud.hook.source;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.config.Config;
import ch.ungleich.uncloud.hook.metadata.PolicyBuilder;
import ch.ungleich.uncloud.hook.model.Allow;
import ch.ungleich.uncloud.hook.model.DomainPolicy;
import ch.ungleich.uncloud.hook.model.IpPrefix;
import ch.ungleich.uncloud.hook.model.Mode;
import ch.ungleich.uncloud.hook.model.Protocol;
import ch.ungleich.uncloud.hook.model.StatefulRules;
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
        nic unknown key         | {"interfaces": {"52:54:00:aa:bb:01": {"inbound": []}}}  | unknown key "inbound" (known: ipv4, ipv6, trusted, ingress, egress)
        ingress an object       | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": {"protocol": "tcp"}}}} | "ingress" must be an array of rule objects, not an object
        egress null             | {"interfaces": {"52:54:00:aa:bb:01": {"egress": null}}} | "egress" must be an array of rule objects, not null
        rule a string           | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": ["tcp 22"]}}} | ingress rule 1 must be an object such as
        port a number           | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"protocol": "tcp", "port": 22}]}}} | ingress rule 1: "port" must be a string ("22" or "8000-8080"), not the number 22
        protocol null           | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{}, {"protocol": null}]}}} | ingress rule 2: "protocol" must be a string, not null
        from an array           | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"from": ["198.51.100.0/24"]}]}}} | "from" must be a string, not an array
        rule unknown key        | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"protocol": "tcp", "ports": "22"}]}}} | ingress rule 1: unknown key "ports" (known: protocol, port, from, to)
        unknown protocol        | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"protocol": "sctp"}]}}} | nic0 52:54:00:aa:bb:01: ingress rule <uc:allow protocol="sctp"/>: unknown protocol 'sctp' (tcp, udp, icmp, icmpv6 or any)
        port without tcp/udp    | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"protocol": "icmp", "port": "8"}]}}} | a port needs protocol="tcp" or "udp"
        port without protocol   | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"port": "22"}]}}} | a port needs protocol="tcp" or "udp"
        reversed range          | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"protocol": "udp", "port": "90-80"}]}}} | port range 90-80 is reversed; write 80-90
        port 0                  | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"protocol": "tcp", "port": "0"}]}}} | ports are 1 to 65535
        port text               | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"protocol": "tcp", "port": "ssh"}]}}} | port 'ssh' is not a port or a lo-hi range
        host bits in from       | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"protocol": "tcp", "from": "198.51.100.1/24"}]}}} | from: '198.51.100.1/24' has host bits set
        from in egress          | {"interfaces": {"52:54:00:aa:bb:01": {"egress": [{"protocol": "tcp", "from": "198.51.100.0/24"}]}}} | egress rules take 'to' (the remote side), not 'from'
        to in ingress           | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"to": "198.51.100.0/24"}]}}} | ingress rules take 'from' (the remote side), not 'to'
        v6 peer with icmp       | {"interfaces": {"52:54:00:aa:bb:01": {"ingress": [{"protocol": "icmp", "from": "2001:db8::/32"}]}}} | is an IPv6 prefix, but icmp is IPv4 only
        rules on a trusted NIC  | {"interfaces": {"52:54:00:aa:bb:01": {"trusted": true, "ingress": [{"protocol": "tcp", "port": "65536"}]}}} | ports are 1 to 65535
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

  /** The per-NIC form's ingress/egress become the NIC's stateful rules, exactly as uc:ingress/uc:egress would. */
  @Test
  void thePerNicFormCarriesIngressAndEgress() {
    DomainPolicy p = policy("{\"interfaces\": {\"" + MAC1 + "\": {\"ipv4\": [\"192.0.2.10\"], \"ingress\": ["
        + "{\"protocol\": \"tcp\", \"port\": \"22\", \"from\": \"198.51.100.0/24\"}, {\"protocol\": \"udp\", \"port\": \"8000-8080\"},"
        + " {\"protocol\": \"icmpv6\"}, {}], \"egress\": [{\"protocol\": \"tcp\", \"port\": \"443\", \"to\": \"2001:db8::/32\"}]},"
        + " \"" + MAC2 + "\": {\"ipv4\": [\"192.0.2.20\"], \"ingress\": []}}}", domain("bridge " + MAC1, "bridge " + MAC2));
    StatefulRules a = p.nics().get(0).rules();
    assertTrue(a.ingress() && a.egress(), a.toString());
    assertEquals(List.of(
        new Allow(Protocol.TCP, 22, 22, IpPrefix.parse("198.51.100.0/24"), "<uc:allow protocol=\"tcp\" port=\"22\" from=\"198.51.100.0/24\"/>"),
        new Allow(Protocol.UDP, 8000, 8080, null, "<uc:allow protocol=\"udp\" port=\"8000-8080\"/>"),
        new Allow(Protocol.ICMPV6, 0, 0, null, "<uc:allow protocol=\"icmpv6\"/>"),
        new Allow(Protocol.ANY, 0, 0, null, "<uc:allow/>")), a.in());
    assertEquals(List.of(new Allow(Protocol.TCP, 443, 443, IpPrefix.parse("2001:db8::/32"),
        "<uc:allow protocol=\"tcp\" port=\"443\" to=\"2001:db8::/32\"/>")), a.out());
    // [] is an empty uc:ingress (only replies reach the NIC); no key is no uc:ingress
    assertEquals(new StatefulRules(true, List.of(), false, List.of()), p.nics().get(1).rules());
    p = policy("{\"interfaces\": {\"" + MAC1 + "\": {\"ipv4\": [\"192.0.2.10\"]}}}", domain("bridge " + MAC1));
    assertEquals(StatefulRules.NONE, p.nics().get(0).rules());
  }

  /** The same value as the XML gives the same policy, and render writes it back (etcd put / import). */
  @Test
  void ingressAndEgressRoundTripThroughTheXml() {
    String xml = "<domain type='qemu'><name>web01</name><uuid>6d696776-6d31-4000-8000-000000000001</uuid><metadata>"
        + "<uc:firewall xmlns:uc='https://ungleich.ch/uncloud/hook/1'><uc:interface mac='" + MAC1 + "'>"
        + "<uc:ip address='192.0.2.10'/><uc:ingress><uc:allow protocol='tcp' port='22' from='198.51.100.0/24'/>"
        + "<uc:allow protocol='icmp'/></uc:ingress><uc:egress/></uc:interface>"
        + "<uc:interface mac='" + MAC2 + "'><uc:ip address='192.0.2.20'/></uc:interface></uc:firewall></metadata>"
        + "<devices><interface type='bridge'><mac address='" + MAC1 + "'/><source bridge='br0'/><target dev='vnet1'/></interface>"
        + "<interface type='bridge'><mac address='" + MAC2 + "'/><source bridge='br0'/><target dev='vnet2'/></interface>"
        + "</devices></domain>";
    Domain d = DomainReader.read(xml);
    String json = EtcdValue.render(d.metadata.firewall);
    assertEquals("{\"interfaces\":{\"" + MAC1 + "\":{\"ipv4\":[\"192.0.2.10\"],\"ipv6\":[],"
        + "\"ingress\":[{\"protocol\":\"tcp\",\"port\":\"22\",\"from\":\"198.51.100.0/24\"},{\"protocol\":\"icmp\"}],"
        + "\"egress\":[]},\"" + MAC2 + "\":{\"ipv4\":[\"192.0.2.20\"],\"ipv6\":[]}}}", json);
    assertEquals(PolicyBuilder.build(d, Config.defaults()), policy(json, d));
    assertEquals(json, EtcdValue.render(EtcdValue.parse(json, d, KEY)));
  }

  @Test
  void refusesMoreThan64Rules() {
    String rule = "{\"protocol\": \"tcp\", \"port\": \"22\"}";
    String ok = "{\"interfaces\": {\"" + MAC1 + "\": {\"egress\": [" + String.join(", ", java.util.Collections.nCopies(64, rule)) + "]}}}";
    assertEquals(64, policy(ok, domain("bridge " + MAC1)).nics().get(0).rules().out().size());
    String m = reject(ok.replace("[" + rule, "[" + rule + ", " + rule), domain("bridge " + MAC1));
    assertTrue(m.contains("uc:egress has 65 rules; at most 64 are allowed"), m);
  }

  /** backend = nwfilter enforces them too: taken from etcd as from the XML. */
  @Test
  void nwfilterTakesIngressFromEtcdToo() {
    Domain d = domain("bridge " + MAC1);
    Domain withValue = AddressSource.with(d, EtcdValue.parse("{\"interfaces\": {\"" + MAC1 + "\": {\"ipv4\": [\"192.0.2.10\"],"
        + " \"ingress\": []}}}", d, KEY));
    assertTrue(PolicyBuilder.build(withValue, Config.parse("backend = nwfilter", "t")).nics().get(0).rules().ingress());
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
