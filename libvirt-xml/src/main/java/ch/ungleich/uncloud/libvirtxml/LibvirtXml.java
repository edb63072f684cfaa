package ch.ungleich.uncloud.libvirtxml;

import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import jakarta.xml.bind.JAXBContext;
import jakarta.xml.bind.JAXBException;
import jakarta.xml.bind.Marshaller;
import jakarta.xml.bind.UnmarshalException;
import jakarta.xml.bind.Unmarshaller;
import jakarta.xml.bind.ValidationEvent;
import java.io.StringReader;
import java.io.StringWriter;
import javax.xml.XMLConstants;
import javax.xml.stream.XMLInputFactory;
import javax.xml.stream.XMLStreamException;
import javax.xml.stream.XMLStreamReader;
import javax.xml.validation.Schema;
import javax.xml.validation.SchemaFactory;
import org.w3c.dom.Element;
import org.xml.sax.SAXException;

/**
 * Reads libvirt domain XML and reads/writes our metadata element. Pure: strings and DOM in, model out.
 *
 * <p>Failures are {@link XmlException}s whose message is one line fit for an operator.
 */
public final class LibvirtXml {
  private static final XMLInputFactory STAX = newStax();
  private static JAXBContext domainContext;
  private static JAXBContext firewallContext;
  private static Schema firewallSchema;

  private LibvirtXml() {}

  /** Parses a domain document; throws {@link XmlException} if it is not well-formed XML or not a domain. */
  public static Domain readDomain(String xml) {
    try {
      Unmarshaller u = domainContext().createUnmarshaller();
      XMLStreamReader r = STAX.createXMLStreamReader(new StringReader(xml));
      Object o = u.unmarshal(r);
      if (!(o instanceof Domain d)) {
        throw new XmlException("not a libvirt <domain> document");
      }
      if (d.metadata != null) {
        d.metadata.firewall = readFirewall(d);
      }
      return d;
    } catch (JAXBException | XMLStreamException e) {
      throw new XmlException("domain XML is not well-formed: " + firstLine(e));
    }
  }

  /**
   * Finds our element among the domain's metadata; null when the domain has none. Throws if there is
   * one but it does not follow the schema (unknown element or attribute, missing mac or address).
   */
  private static Firewall readFirewall(Domain domain) {
    if (domain.metadata == null) {
      return null;
    }
    Firewall found = null;
    for (Element e : domain.metadata.any) {
      if (Firewall.NAMESPACE.equals(e.getNamespaceURI())) {
        if (found != null) {
          throw new XmlException("metadata has more than one element in " + Firewall.NAMESPACE);
        }
        found = readFirewall(e);
      }
    }
    return found;
  }

  /** Reads one {@code <uc:firewall>} element, validating it against {@code firewall.xsd}. */
  public static Firewall readFirewall(Element element) {
    if (!"firewall".equals(element.getLocalName())) {
      throw new XmlException(
          "metadata element in " + Firewall.NAMESPACE + " must be <firewall>, not <" + element.getLocalName() + ">");
    }
    try {
      Unmarshaller u = firewallContext().createUnmarshaller();
      u.setSchema(firewallSchema());
      return u.unmarshal(element, Firewall.class).getValue();
    } catch (UnmarshalException e) {
      throw new XmlException("invalid <uc:firewall> metadata: " + firstLine(e));
    } catch (JAXBException e) {
      throw new XmlException("cannot read <uc:firewall> metadata: " + firstLine(e));
    }
  }

  /** Parses a standalone {@code <firewall>} document (as given to {@code virsh metadata --set}). */
  public static Firewall readFirewall(String xml) {
    try {
      Unmarshaller u = firewallContext().createUnmarshaller();
      u.setSchema(firewallSchema());
      XMLStreamReader r = STAX.createXMLStreamReader(new StringReader(xml));
      return u.unmarshal(r, Firewall.class).getValue();
    } catch (JAXBException | XMLStreamException e) {
      throw new XmlException("invalid <uc:firewall> metadata: " + firstLine(e));
    }
  }

  /** Renders our element, namespaced and indented, as libvirt stores it. */
  public static String writeFirewall(Firewall firewall) {
    try {
      Marshaller m = firewallContext().createMarshaller();
      m.setProperty(Marshaller.JAXB_FORMATTED_OUTPUT, true);
      m.setProperty(Marshaller.JAXB_FRAGMENT, true);
      StringWriter w = new StringWriter();
      m.marshal(firewall, w);
      return w.toString();
    } catch (JAXBException e) {
      throw new XmlException("cannot write metadata: " + firstLine(e));
    }
  }

  private static synchronized JAXBContext domainContext() throws JAXBException {
    if (domainContext == null) {
      domainContext = JAXBContext.newInstance(Domain.class);
    }
    return domainContext;
  }

  private static synchronized JAXBContext firewallContext() throws JAXBException {
    if (firewallContext == null) {
      firewallContext = JAXBContext.newInstance(Firewall.class);
    }
    return firewallContext;
  }

  private static synchronized Schema firewallSchema() {
    if (firewallSchema == null) {
      try {
        SchemaFactory f = SchemaFactory.newInstance(XMLConstants.W3C_XML_SCHEMA_NS_URI);
        firewallSchema = f.newSchema(LibvirtXml.class.getResource("firewall.xsd"));
      } catch (SAXException e) {
        throw new IllegalStateException("bundled firewall.xsd is broken", e);
      }
    }
    return firewallSchema;
  }

  private static XMLInputFactory newStax() {
    XMLInputFactory f = XMLInputFactory.newFactory();
    f.setProperty(XMLInputFactory.SUPPORT_DTD, false);
    f.setProperty(XMLInputFactory.IS_SUPPORTING_EXTERNAL_ENTITIES, false);
    return f;
  }

  /** The most specific message in a cause chain, on one line. */
  static String firstLine(Throwable e) {
    String msg = null;
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof ValidationEvent v && v.getMessage() != null) {
        msg = v.getMessage();
      } else if (t.getMessage() != null) {
        msg = t.getMessage();
      }
      if (t instanceof UnmarshalException u && u.getLinkedException() != null) {
        msg = u.getLinkedException().getMessage();
      }
    }
    if (msg == null) {
      msg = e.getClass().getSimpleName();
    }
    return msg.replaceAll("\\s+", " ").replaceFirst("^ParseError at \\[row,col\\]:\\[(\\d+),(\\d+)\\] Message: ", "line $1: ").trim();
  }
}
