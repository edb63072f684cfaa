package ch.ungleich.uncloud.hook.nwfilter;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The uncloud-* nwfilter definitions bundled from {@code nwfilter-templates/} (classpath
 * {@code nwfilter/}), in the order {@code filters.list} gives: sub-filters before the filters that
 * reference them.
 */
public final class Templates {
  public static final String DIR = "nwfilter/";
  private static final Pattern FILTER_TAG = Pattern.compile("<filter\\s[^>]*>");
  private static final Pattern NAME = Pattern.compile("\\sname=(['\"])([^'\"]+)\\1");

  private Templates() {}

  /** One filter: its name and its XML as shipped. */
  public record Template(String name, String xml) {
    /** The XML with {@code <uuid>} as the first child: libvirt redefines a filter only under its UUID. */
    public String withUuid(String uuid) {
      if (uuid == null) {
        return xml;
      }
      Matcher m = FILTER_TAG.matcher(xml);
      if (!m.find() || !uuid.matches("[0-9a-fA-F-]{32,36}")) {
        throw new IllegalArgumentException(name + ": cannot add uuid " + uuid);
      }
      return xml.substring(0, m.end()) + "\n  <uuid>" + uuid + "</uuid>" + xml.substring(m.end());
    }
  }

  /** Every bundled filter, in definition order. */
  public static List<Template> all() {
    List<Template> out = new ArrayList<>();
    for (String line : read("filters.list").split("\n")) {
      String n = line.strip();
      if (n.isEmpty() || n.startsWith("#")) {
        continue;
      }
      String xml = read(n + ".xml");
      String declared = nameOf(xml);
      if (!n.equals(declared)) {
        throw new IllegalStateException(DIR + n + ".xml declares filter '" + declared + "'");
      }
      out.add(new Template(n, xml));
    }
    return out;
  }

  /** The {@code name} attribute of the {@code <filter>} element. */
  public static String nameOf(String xml) {
    Matcher m = FILTER_TAG.matcher(xml);
    if (!m.find()) {
      return null;
    }
    Matcher n = NAME.matcher(m.group());
    return n.find() ? n.group(2) : null;
  }

  private static String read(String file) {
    try (InputStream in = Templates.class.getClassLoader().getResourceAsStream(DIR + file)) {
      if (in == null) {
        throw new IllegalStateException("bundled " + DIR + file + " is missing from the jar");
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    } catch (IOException e) {
      throw new IllegalStateException("cannot read bundled " + DIR + file, e);
    }
  }
}
