package ch.ungleich.uncloud.hook.nwfilter;

import java.io.StringReader;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import javax.xml.XMLConstants;
import javax.xml.parsers.DocumentBuilder;
import javax.xml.parsers.DocumentBuilderFactory;
import org.w3c.dom.Element;
import org.w3c.dom.NamedNodeMap;
import org.w3c.dom.Node;
import org.xml.sax.InputSource;

/**
 * Compares an nwfilter definition as we ship it with the one libvirt reports: libvirt adds a
 * {@code <uuid>}, drops comments and reformats, so the comparison is of elements, attributes and their
 * order among siblings only. The templates write every value the way libvirt prints it back (all
 * priorities explicit, {@code protocoltype='0x800'}), which {@code nwfilter install}'s "unchanged"
 * depends on.
 */
public final class FilterXml {
  private FilterXml() {}

  /** One line per element: path-indented name and sorted attributes; no uuid, comments or whitespace. */
  public static String canonical(String xml) {
    try {
      DocumentBuilderFactory f = DocumentBuilderFactory.newInstance();
      f.setFeature("http://apache.org/xml/features/disallow-doctype-decl", true);
      f.setFeature(XMLConstants.FEATURE_SECURE_PROCESSING, true);
      f.setExpandEntityReferences(false);
      DocumentBuilder b = f.newDocumentBuilder();
      b.setErrorHandler(null);
      Element root = b.parse(new InputSource(new StringReader(xml))).getDocumentElement();
      List<String> lines = new ArrayList<>();
      walk(root, "", lines, true);
      return String.join("\n", lines);
    } catch (Exception e) {
      throw new IllegalArgumentException("not an nwfilter XML document: " + e.getMessage(), e);
    }
  }

  public static boolean same(String a, String b) {
    return canonical(a).equals(canonical(b));
  }

  private static void walk(Element e, String indent, List<String> out, boolean root) {
    Map<String, String> attrs = new TreeMap<>();
    NamedNodeMap m = e.getAttributes();
    for (int i = 0; i < m.getLength(); i++) {
      attrs.put(m.item(i).getNodeName(), m.item(i).getNodeValue());
    }
    StringBuilder line = new StringBuilder(indent).append(e.getTagName());
    attrs.forEach((k, v) -> line.append(' ').append(k).append("='").append(v).append('\''));
    out.add(line.toString());
    for (Node c = e.getFirstChild(); c != null; c = c.getNextSibling()) {
      if (c instanceof Element child) {
        if (root && child.getTagName().equals("uuid")) {
          continue;
        }
        walk(child, indent + "  ", out, false);
      } else if (c.getNodeType() == Node.TEXT_NODE && !c.getNodeValue().isBlank()) {
        out.add(indent + "  #text " + c.getNodeValue().strip());
      }
    }
  }

  /** The {@code <uuid>} of a filter libvirt reported, or null. */
  public static String uuid(String xml) {
    java.util.regex.Matcher m = java.util.regex.Pattern.compile("<uuid>\\s*([0-9a-fA-F-]+)\\s*</uuid>").matcher(xml);
    return m.find() ? m.group(1) : null;
  }
}
