package ch.ungleich.uncloud.libvirtxml;

import ch.ungleich.uncloud.libvirtxml.domain.Devices;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import ch.ungleich.uncloud.libvirtxml.domain.Interface;
import ch.ungleich.uncloud.libvirtxml.domain.Metadata;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import ch.ungleich.uncloud.libvirtxml.firewall.FirewallInterface;
import java.io.StringReader;
import javax.xml.stream.XMLInputFactory;
import javax.xml.stream.XMLStreamConstants;
import javax.xml.stream.XMLStreamException;
import javax.xml.stream.XMLStreamReader;

/**
 * Reads the same {@link Domain} model as {@link LibvirtXml#readDomain} with a single StAX pass.
 *
 * <p>Why a second reader: libvirt waits for the hook synchronously, three to four times per VM start,
 * and creating a JAXB context costs about 350 ms per JVM (measured: 450 ms for a JAXB read against
 * 104 ms for an empty main). This reader loads no JAXB and no DOM classes. It applies the same rules as
 * {@code firewall.xsd} to our element (unknown elements or attributes, a missing {@code mac} or
 * {@code address}, a non-boolean {@code trusted} are errors), and {@code DomainReaderTest} checks that
 * both readers agree on every test document. Metadata of other applications is skipped, not kept.
 */
public final class DomainReader {
  private static final XMLInputFactory STAX = newStax();

  private DomainReader() {}

  /** Parses a domain document; throws {@link XmlException} with a one-line message on any error. */
  public static Domain read(String xml) {
    try {
      XMLStreamReader r = STAX.createXMLStreamReader(new StringReader(xml));
      try {
        r.nextTag();
        if (!"domain".equals(r.getLocalName()) || !noNamespace(r)) {
          throw new XmlException("not a libvirt <domain> document");
        }
        return domain(r);
      } finally {
        r.close();
      }
    } catch (XMLStreamException e) {
      throw new XmlException("domain XML is not well-formed: " + LibvirtXml.firstLine(e));
    }
  }

  private static Domain domain(XMLStreamReader r) throws XMLStreamException {
    Domain d = new Domain();
    d.type = r.getAttributeValue(null, "type");
    while (r.nextTag() == XMLStreamConstants.START_ELEMENT) {
      switch (noNamespace(r) ? r.getLocalName() : "") {
        case "name" -> d.name = r.getElementText().trim();
        case "uuid" -> d.uuid = r.getElementText().trim();
        case "metadata" -> d.metadata = metadata(r);
        case "devices" -> d.devices = devices(r);
        default -> skip(r);
      }
    }
    return d;
  }

  private static Metadata metadata(XMLStreamReader r) throws XMLStreamException {
    Metadata m = new Metadata();
    while (r.nextTag() == XMLStreamConstants.START_ELEMENT) {
      if (Firewall.NAMESPACE.equals(r.getNamespaceURI())) {
        if (m.firewall != null) {
          throw new XmlException("metadata has more than one element in " + Firewall.NAMESPACE);
        }
        m.firewall = firewall(r);
      } else {
        skip(r);
      }
    }
    return m;
  }

  private static Firewall firewall(XMLStreamReader r) throws XMLStreamException {
    if (!"firewall".equals(r.getLocalName())) {
      throw new XmlException("metadata element in " + Firewall.NAMESPACE + " must be <firewall>, not <"
          + r.getLocalName() + ">");
    }
    onlyAttributes(r);
    Firewall f = new Firewall();
    while (nextChild(r)) {
      ours(r, "interface");
      FirewallInterface i = new FirewallInterface();
      i.mac = r.getAttributeValue(null, "mac");
      i.trusted = r.getAttributeValue(null, "trusted");
      onlyAttributes(r, "mac", "trusted");
      if (i.mac == null) {
        throw invalid("attribute 'mac' must appear on element 'uc:interface'");
      }
      if (i.trusted != null && !i.trusted.trim().matches("true|false|1|0")) {
        throw invalid("'" + i.trusted + "' is not a valid value for 'boolean' (attribute 'trusted')");
      }
      // the schema's sequence: uc:ip*, uc:ingress?, uc:egress?
      int phase = 0;
      while (nextChild(r)) {
        String name = Firewall.NAMESPACE.equals(r.getNamespaceURI()) ? r.getLocalName() : "";
        if (name.equals("ip") && phase == 0) {
          String address = r.getAttributeValue(null, "address");
          onlyAttributes(r, "address");
          if (address == null) {
            throw invalid("attribute 'address' must appear on element 'uc:ip'");
          }
          i.ips.add(new FirewallInterface.Ip(address));
          empty(r, "ip");
        } else if (name.equals("ingress") && phase < 1) {
          phase = 1;
          onlyAttributes(r);
          i.ingress = rules(r);
        } else if (name.equals("egress") && phase < 2) {
          phase = 2;
          onlyAttributes(r);
          i.egress = rules(r);
        } else {
          String expected = phase == 0 ? "uc:ip>, <uc:ingress> or <uc:egress" : phase == 1 ? "uc:egress" : "";
          if (expected.isEmpty()) {
            throw invalid("unexpected element <" + qname(r) + "> after <uc:egress>");
          }
          throw invalid("unexpected element <" + qname(r) + ">, expected <" + expected + ">");
        }
      }
      f.interfaces.add(i);
    }
    return f;
  }

  /**
   * {@code <uc:ingress>} / {@code <uc:egress>}: only {@code <uc:allow>} children. Both {@code from} and
   * {@code to} are read in either list, as the schema does; the hook refuses the wrong one.
   */
  private static FirewallInterface.Rules rules(XMLStreamReader r)
      throws XMLStreamException {
    FirewallInterface.Rules rules = new FirewallInterface.Rules();
    while (nextChild(r)) {
      ours(r, "allow");
      onlyAttributes(r, "protocol", "port", "from", "to");
      rules.allows.add(new FirewallInterface.Allow(
          r.getAttributeValue(null, "protocol"),
          r.getAttributeValue(null, "port"),
          r.getAttributeValue(null, "from"),
          r.getAttributeValue(null, "to")));
      empty(r, "allow");
    }
    return rules;
  }

  private static void empty(XMLStreamReader r, String element) throws XMLStreamException {
    if (nextChild(r)) {
      throw invalid("element 'uc:" + element + "' must be empty, found <" + r.getLocalName() + ">");
    }
  }

  private static Devices devices(XMLStreamReader r) throws XMLStreamException {
    Devices devices = new Devices();
    while (r.nextTag() == XMLStreamConstants.START_ELEMENT) {
      if ("interface".equals(r.getLocalName()) && noNamespace(r)) {
        devices.interfaces.add(nic(r));
      } else {
        skip(r);
      }
    }
    return devices;
  }

  private static Interface nic(XMLStreamReader r) throws XMLStreamException {
    Interface n = new Interface();
    n.type = r.getAttributeValue(null, "type");
    while (r.nextTag() == XMLStreamConstants.START_ELEMENT) {
      switch (noNamespace(r) ? r.getLocalName() : "") {
        case "mac" -> {
          n.mac = new Interface.Address();
          n.mac.address = r.getAttributeValue(null, "address");
          skip(r);
        }
        case "source" -> {
          n.source = new Interface.Source();
          n.source.bridge = r.getAttributeValue(null, "bridge");
          n.source.network = r.getAttributeValue(null, "network");
          n.source.dev = r.getAttributeValue(null, "dev");
          n.source.mode = r.getAttributeValue(null, "mode");
          skip(r);
        }
        case "target" -> {
          n.target = new Interface.Target();
          n.target.dev = r.getAttributeValue(null, "dev");
          skip(r);
        }
        case "model" -> {
          n.model = new Interface.Model();
          n.model.type = r.getAttributeValue(null, "type");
          skip(r);
        }
        case "alias" -> {
          n.alias = new Interface.Alias();
          n.alias.name = r.getAttributeValue(null, "name");
          skip(r);
        }
        case "virtualport" -> {
          n.virtualport = new Interface.VirtualPort();
          n.virtualport.type = r.getAttributeValue(null, "type");
          skip(r);
        }
        case "filterref" -> n.filterref = filterref(r);
        default -> skip(r);
      }
    }
    return n;
  }

  private static Interface.FilterRef filterref(XMLStreamReader r) throws XMLStreamException {
    Interface.FilterRef f = new Interface.FilterRef();
    f.filter = r.getAttributeValue(null, "filter");
    while (r.nextTag() == XMLStreamConstants.START_ELEMENT) {
      if ("parameter".equals(r.getLocalName()) && noNamespace(r)) {
        f.parameters.add(
            new Interface.Parameter(r.getAttributeValue(null, "name"), r.getAttributeValue(null, "value")));
      }
      skip(r);
    }
    return f;
  }

  /** Advances to the next child start tag (true) or to the parent's end tag (false); text is an error. */
  private static boolean nextChild(XMLStreamReader r) throws XMLStreamException {
    while (true) {
      int ev = r.next();
      switch (ev) {
        case XMLStreamConstants.START_ELEMENT:
          return true;
        case XMLStreamConstants.END_ELEMENT:
          return false;
        case XMLStreamConstants.CHARACTERS:
        case XMLStreamConstants.CDATA:
        case XMLStreamConstants.SPACE:
          if (!r.isWhiteSpace()) {
            throw invalid("text is not allowed in <uc:" + "firewall>: '" + r.getText().trim() + "'");
          }
          break;
        default:
          break;
      }
    }
  }

  private static void ours(XMLStreamReader r, String expected) {
    if (!Firewall.NAMESPACE.equals(r.getNamespaceURI()) || !expected.equals(r.getLocalName())) {
      throw invalid("unexpected element <" + qname(r) + ">, expected <uc:" + expected + ">");
    }
  }

  private static void onlyAttributes(XMLStreamReader r, String... allowed) {
    outer:
    for (int k = 0; k < r.getAttributeCount(); k++) {
      String ns = r.getAttributeNamespace(k);
      String name = r.getAttributeLocalName(k);
      if (ns == null || ns.isEmpty()) {
        for (String a : allowed) {
          if (a.equals(name)) {
            continue outer;
          }
        }
      }
      throw invalid("attribute '" + name + "' is not allowed on element 'uc:" + r.getLocalName() + "'");
    }
  }

  private static XmlException invalid(String what) {
    return new XmlException("invalid <uc:firewall> metadata: " + what);
  }

  private static String qname(XMLStreamReader r) {
    String p = r.getPrefix();
    return (p == null || p.isEmpty() ? "" : p + ":") + r.getLocalName();
  }

  private static boolean noNamespace(XMLStreamReader r) {
    String ns = r.getNamespaceURI();
    return ns == null || ns.isEmpty();
  }

  /** Skips the current element and all it contains. */
  private static void skip(XMLStreamReader r) throws XMLStreamException {
    int depth = 1;
    while (depth > 0) {
      int ev = r.next();
      if (ev == XMLStreamConstants.START_ELEMENT) {
        depth++;
      } else if (ev == XMLStreamConstants.END_ELEMENT) {
        depth--;
      }
    }
  }

  private static XMLInputFactory newStax() {
    // The JDK's own implementation, directly: newFactory() first searches system properties,
    // jaxp.properties and every jar's META-INF/services, and its java.xml code bootstraps indy string
    // concatenation on the way (13 LambdaForm classes no CDS archive holds; ~10 ms of each hook call).
    XMLInputFactory f = XMLInputFactory.newDefaultFactory();
    f.setProperty(XMLInputFactory.SUPPORT_DTD, false);
    f.setProperty(XMLInputFactory.IS_SUPPORTING_EXTERNAL_ENTITIES, false);
    f.setProperty(XMLInputFactory.IS_COALESCING, true);
    return f;
  }
}
