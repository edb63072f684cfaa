package ch.ungleich.uncloud.libvirtxml.domain;

import jakarta.xml.bind.annotation.XmlAttribute;
import jakarta.xml.bind.annotation.XmlElement;
import jakarta.xml.bind.annotation.XmlRootElement;

/** {@code <domain>}: only the children we read. */
@XmlRootElement(name = "domain")
public class Domain {
  @XmlAttribute public String type;
  @XmlElement public String name;
  @XmlElement public String uuid;
  @XmlElement public Metadata metadata;
  @XmlElement public Devices devices;
}
