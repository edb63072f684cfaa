package ch.ungleich.uncloud.libvirtxml.domain;

import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import jakarta.xml.bind.annotation.XmlAnyElement;
import jakarta.xml.bind.annotation.XmlTransient;
import java.util.ArrayList;
import java.util.List;
import org.w3c.dom.Element;

/** {@code <metadata>}: one element per application namespace, kept as DOM. */
public class Metadata {
  @XmlAnyElement public List<Element> any = new ArrayList<>();

  /** Our element, parsed and validated by whichever reader read the domain; null if absent. */
  @XmlTransient public Firewall firewall;
}
