package ch.ungleich.uncloud.libvirtxml.firewall;

import jakarta.xml.bind.annotation.XmlAttribute;
import jakarta.xml.bind.annotation.XmlElement;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code <uc:interface mac=… trusted=…>}: the addresses one NIC may send from, and optionally its
 * stateful {@code <uc:ingress>} / {@code <uc:egress>} allow lists.
 */
public class FirewallInterface {
  @XmlAttribute(namespace = "") public String mac;
  @XmlAttribute(namespace = "") public String trusted;

  @XmlElement(name = "ip")
  public List<Ip> ips = new ArrayList<>();

  /** {@code <uc:ingress>}: null when absent (not filtered by rules), an empty list when present and empty. */
  @XmlElement(name = "ingress")
  public Rules ingress;

  /** {@code <uc:egress>}: null when absent (not restricted beyond anti-spoofing). */
  @XmlElement(name = "egress")
  public Rules egress;

  /** {@code <uc:ip address=…>}: an address or a CIDR prefix. */
  public static class Ip {
    @XmlAttribute(namespace = "") public String address;

    public Ip() {}

    public Ip(String address) {
      this.address = address;
    }
  }

  /** {@code <uc:ingress>} or {@code <uc:egress>}: a list of {@code <uc:allow>}. */
  public static class Rules {
    @XmlElement(name = "allow")
    public List<Allow> allows = new ArrayList<>();
  }

  /**
   * {@code <uc:allow protocol=… port=… from=…/>} (ingress) or {@code … to=…} (egress). Unchecked text: the hook's
   * PolicyBuilder validates the values and refuses {@code to} in ingress, {@code from} in egress.
   */
  public static class Allow {
    @XmlAttribute(namespace = "") public String protocol;
    @XmlAttribute(namespace = "") public String port;
    @XmlAttribute(namespace = "") public String from;
    @XmlAttribute(namespace = "") public String to;

    public Allow() {}

    public Allow(String protocol, String port, String from, String to) {
      this.protocol = protocol;
      this.port = port;
      this.from = from;
      this.to = to;
    }
  }
}
