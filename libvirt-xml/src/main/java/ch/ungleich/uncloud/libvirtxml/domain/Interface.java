package ch.ungleich.uncloud.libvirtxml.domain;

import jakarta.xml.bind.annotation.XmlAttribute;
import jakarta.xml.bind.annotation.XmlElement;
import java.util.ArrayList;
import java.util.List;

/** {@code <interface type=…>}: a NIC. */
public class Interface {
  @XmlAttribute public String type;
  @XmlElement public Address mac;
  @XmlElement public Source source;
  @XmlElement public Target target;
  @XmlElement public Model model;
  @XmlElement public FilterRef filterref;
  @XmlElement public Alias alias;
  @XmlElement public VirtualPort virtualport;

  /** {@code <mac address=…>}. */
  public static class Address {
    @XmlAttribute public String address;
  }

  /** {@code <source bridge|network|dev|mode=…>}. */
  public static class Source {
    @XmlAttribute public String bridge;
    @XmlAttribute public String network;
    @XmlAttribute public String dev;
    @XmlAttribute public String mode;
  }

  /** {@code <target dev=…>}: the tap, present only while the domain runs. */
  public static class Target {
    @XmlAttribute public String dev;
  }

  /** {@code <model type=…>}. */
  public static class Model {
    @XmlAttribute public String type;
  }

  /** {@code <virtualport type=…>}: e.g. openvswitch, whose ports a Linux bridge never sees. */
  public static class VirtualPort {
    @XmlAttribute public String type;
  }

  /** {@code <alias name=…>}: libvirt's device name, e.g. net0. */
  public static class Alias {
    @XmlAttribute public String name;
  }

  /** {@code <filterref filter=…>} with its {@code <parameter name value>} children. */
  public static class FilterRef {
    @XmlAttribute public String filter;

    @XmlElement(name = "parameter")
    public List<Parameter> parameters = new ArrayList<>();
  }

  /** {@code <parameter name=… value=…>}. */
  public static class Parameter {
    @XmlAttribute public String name;
    @XmlAttribute public String value;

    public Parameter() {}

    public Parameter(String name, String value) {
      this.name = name;
      this.value = value;
    }
  }
}
