package ch.ungleich.uncloud.libvirtxml.domain;

import jakarta.xml.bind.annotation.XmlElement;
import java.util.ArrayList;
import java.util.List;

/** {@code <devices>}: only the NICs. */
public class Devices {
  @XmlElement(name = "interface")
  public List<Interface> interfaces = new ArrayList<>();
}
