package ch.ungleich.uncloud.libvirtxml;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import ch.ungleich.uncloud.libvirtxml.domain.Interface;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import ch.ungleich.uncloud.libvirtxml.firewall.FirewallInterface;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

class DomainReaderTest {

  static Stream<String> documents() {
    return Stream.of("full.xml", "plain.xml", "empty-metadata.xml");
  }

  static String resource(String name) throws IOException {
    try (InputStream in = DomainReaderTest.class.getResourceAsStream("/domains/" + name)) {
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  /** The hook's StAX reader and the CLI's JAXB reader must see the same domain. */
  @ParameterizedTest
  @MethodSource("documents")
  void staxAndJaxbAgree(String name) throws IOException {
    String xml = resource(name);
    assertEquals(describe(LibvirtXml.readDomain(xml)), describe(DomainReader.read(xml)));
  }

  @Test
  void readsWhatTheHookNeeds() throws IOException {
    Domain d = DomainReader.read(resource("full.xml"));
    assertEquals("web01", d.name);
    assertEquals("6d696776-6d31-4000-8000-000000000001", d.uuid);
    assertEquals(4, d.devices.interfaces.size());
    Interface n = d.devices.interfaces.get(0);
    assertEquals("bridge", n.type);
    assertEquals("vnet0", n.target.dev);
    assertEquals("net0", n.alias.name);
    assertEquals("uncloud-clean-traffic", n.filterref.filter);
    assertEquals("IP", n.filterref.parameters.get(1).name);
    assertEquals("openvswitch", d.devices.interfaces.get(2).virtualport.type);
    Firewall f = d.metadata.firewall;
    assertEquals(2, f.interfaces.size());
    assertEquals("52:54:00:AA:bb:01", f.interfaces.get(0).mac);
    assertEquals(3, f.interfaces.get(0).ips.size());
    assertEquals("true", f.interfaces.get(1).trusted);
    FirewallInterface.Rules in = f.interfaces.get(0).ingress;
    assertEquals(6, in.allows.size());
    assertEquals("198.51.100.0/24", in.allows.get(0).from);
    assertEquals("80-81", in.allows.get(1).port);
    assertNull(in.allows.get(5).protocol);
    assertEquals("0.0.0.0/0", f.interfaces.get(0).egress.allows.get(0).to);
    assertNotNull(f.interfaces.get(1).ingress, "an empty <uc:ingress/> is present, not absent");
    assertTrue(f.interfaces.get(1).ingress.allows.isEmpty());
    assertNull(f.interfaces.get(1).egress);
  }

  @Test
  void noMetadataMeansNoFirewall() throws IOException {
    assertNull(DomainReader.read(resource("plain.xml")).metadata);
    Domain e = DomainReader.read(resource("empty-metadata.xml"));
    assertNotNull(e.metadata);
    assertNull(e.metadata.firewall);
  }

  @ParameterizedTest
  @ValueSource(
      strings = {
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:ip adress='192.0.2.1'/></uc:interface>",
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:ip/></uc:interface>",
        "<uc:interface><uc:ip address='192.0.2.1'/></uc:interface>",
        "<uc:interface mac='52:54:00:aa:bb:01' trusted='yes'/>",
        "<uc:interface mac='52:54:00:aa:bb:01' colour='red'/>",
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:address value='192.0.2.1'/></uc:interface>",
        "<uc:interface mac='52:54:00:aa:bb:01'>192.0.2.1</uc:interface>",
        "<uc:nic mac='52:54:00:aa:bb:01'/>",
        "<interface mac='52:54:00:aa:bb:01'/>",
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:ingress><uc:allow prot='tcp'/></uc:ingress></uc:interface>",
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:ingress><uc:deny/></uc:ingress></uc:interface>",
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:ingress><uc:allow><uc:x/></uc:allow></uc:ingress></uc:interface>",
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:ingress/><uc:ingress/></uc:interface>",
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:egress/><uc:ingress/></uc:interface>",
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:ingress/><uc:ip address='192.0.2.1'/></uc:interface>",
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:ingress colour='red'/></uc:interface>",
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:ingress>tcp</uc:ingress></uc:interface>",
        "<uc:interface mac='52:54:00:aa:bb:01'><uc:ingress><allow protocol='tcp'/></uc:ingress></uc:interface>",
      })
  void bothReadersRejectWhatTheSchemaRejects(String body) {
    String xml = domainWith("<uc:firewall xmlns:uc='" + Firewall.NAMESPACE + "'>" + body + "</uc:firewall>");
    XmlException stax = assertThrows(XmlException.class, () -> DomainReader.read(xml));
    XmlException jaxb = assertThrows(XmlException.class, () -> LibvirtXml.readDomain(xml));
    assertTrue(stax.getMessage().startsWith("invalid <uc:firewall> metadata: "), stax.getMessage());
    assertTrue(jaxb.getMessage().startsWith("invalid <uc:firewall> metadata: "), jaxb.getMessage());
    assertTrue(!stax.getMessage().contains("\n") && !jaxb.getMessage().contains("\n"));
  }

  @Test
  void rejectsTwoFirewallElementsAndWrongRoot() {
    String two = "<uc:firewall xmlns:uc='" + Firewall.NAMESPACE + "'/>";
    assertThrows(XmlException.class, () -> DomainReader.read(domainWith(two + two)));
    assertThrows(XmlException.class, () -> LibvirtXml.readDomain(domainWith(two + two)));
    String wrong = "<uc:rules xmlns:uc='" + Firewall.NAMESPACE + "'/>";
    assertThrows(XmlException.class, () -> DomainReader.read(domainWith(wrong)));
  }

  @ParameterizedTest
  @ValueSource(strings = {"", "<domain>", "not xml", "<network><name>x</name></network>",
      "<!DOCTYPE d [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><domain><name>&x;</name></domain>"})
  void malformedOrForeignDocumentsAreOneLineErrors(String xml) {
    XmlException e = assertThrows(XmlException.class, () -> DomainReader.read(xml));
    assertTrue(!e.getMessage().contains("\n"), e.getMessage());
    assertTrue(!e.getMessage().contains("root:"), "no file content may leak: " + e.getMessage());
  }

  @Test
  void writtenMetadataReadsBack() {
    Firewall f = new Firewall();
    FirewallInterface i = new FirewallInterface();
    i.mac = "52:54:00:aa:bb:01";
    i.ips.add(new FirewallInterface.Ip("192.0.2.10"));
    i.ips.add(new FirewallInterface.Ip("2001:db8:1234::/64"));
    f.interfaces.add(i);
    String xml = LibvirtXml.writeFirewall(f);
    assertTrue(xml.contains("xmlns:uc=\"" + Firewall.NAMESPACE + "\""), xml);
    Firewall back = LibvirtXml.readFirewall(xml);
    assertEquals("52:54:00:aa:bb:01", back.interfaces.get(0).mac);
    assertEquals("2001:db8:1234::/64", back.interfaces.get(0).ips.get(1).address);
    Domain d = DomainReader.read(domainWith(xml));
    assertEquals(2, d.metadata.firewall.interfaces.get(0).ips.size());
  }

  static String domainWith(String metadata) {
    return "<domain type='qemu'><name>t</name><uuid>6d696776-6d31-4000-8000-000000000009</uuid><metadata>"
        + metadata + "</metadata><devices/></domain>";
  }

  static String rules(FirewallInterface.Rules r) {
    return r == null ? "absent" : r.allows.stream()
        .map(a -> a.protocol + "/" + a.port + "/" + a.from + "/" + a.to).toList().toString();
  }

  /** A canonical text of everything the model holds, for comparing the two readers. */
  static String describe(Domain d) {
    List<String> s = new ArrayList<>();
    s.add(d.type + "|" + d.name + "|" + d.uuid);
    if (d.metadata != null && d.metadata.firewall != null) {
      for (FirewallInterface i : d.metadata.firewall.interfaces) {
        s.add("fw " + i.mac + " " + i.trusted + " " + i.ips.stream().map(ip -> ip.address).toList()
            + " in " + rules(i.ingress) + " out " + rules(i.egress));
      }
    } else {
      s.add("fw none " + (d.metadata == null));
    }
    if (d.devices != null) {
      for (Interface n : d.devices.interfaces) {
        s.add(String.join(" ", "nic", n.type, n.mac == null ? null : n.mac.address,
            n.source == null ? "-" : n.source.bridge + "/" + n.source.network + "/" + n.source.dev + "/" + n.source.mode,
            n.target == null ? "-" : n.target.dev, n.model == null ? "-" : n.model.type,
            n.alias == null ? "-" : n.alias.name, n.virtualport == null ? "-" : n.virtualport.type,
            n.filterref == null ? "-" : n.filterref.filter + n.filterref.parameters.stream()
                .map(p -> p.name + "=" + p.value).toList()));
      }
    }
    return String.join("\n", s);
  }
}
