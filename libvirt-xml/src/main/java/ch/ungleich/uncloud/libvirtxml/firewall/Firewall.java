package ch.ungleich.uncloud.libvirtxml.firewall;

import jakarta.xml.bind.annotation.XmlElement;
import jakarta.xml.bind.annotation.XmlRootElement;
import java.util.ArrayList;
import java.util.List;

/** {@code <uc:firewall>}: one {@code <uc:interface>} per NIC. */
@XmlRootElement(name = "firewall")
public class Firewall {
  public static final String NAMESPACE = "https://ungleich.ch/uncloud/hook/1";

  @XmlElement(name = "interface")
  public List<FirewallInterface> interfaces = new ArrayList<>();
}
