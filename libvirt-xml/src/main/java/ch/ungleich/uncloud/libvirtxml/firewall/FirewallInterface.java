package ch.ungleich.uncloud.libvirtxml.firewall;

import jakarta.xml.bind.annotation.XmlAttribute;
import jakarta.xml.bind.annotation.XmlElement;
import java.util.ArrayList;
import java.util.List;

/** {@code <uc:interface mac=… trusted=…>}: the addresses one NIC may send from. */
public class FirewallInterface {
  @XmlAttribute(namespace = "") public String mac;
  @XmlAttribute(namespace = "") public String trusted;

  @XmlElement(name = "ip")
  public List<Ip> ips = new ArrayList<>();

  /** {@code <uc:ip address=…>}: an address or a CIDR prefix. */
  public static class Ip {
    @XmlAttribute(namespace = "") public String address;

    public Ip() {}

    public Ip(String address) {
      this.address = address;
    }
  }
}
