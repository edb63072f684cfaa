package ch.ungleich.uncloud.hook.nwfilter;

import java.util.ArrayList;
import java.util.List;

/**
 * A NIC's {@code <filterref filter=…>} with its {@code <parameter name value>} children, in libvirt's
 * canonical order: parameters sorted by name, the values of a list parameter in their given order (the
 * order matters: {@code IPV4[i]} pairs with {@code IPV4_PREFIX[i]}). libvirt writes domain XML in that
 * order, so two filterrefs are the same exactly when they are {@link #equals}.
 */
public record FilterRef(String filter, List<Param> params) {
  /** Every filter we define starts with this. */
  public static final String PREFIX = "uncloud-";

  /**
   * One {@code <parameter name=… value=…/>}. equals/hashCode are written out: the hook compares
   * filterrefs on every call, and a record's generated ones bootstrap through invokedynamic, which
   * costs start-up time no CDS archive saves (see the parent pom on {@code -XDstringConcat=inline}).
   */
  public record Param(String name, String value) {
    @Override
    public boolean equals(Object o) {
      return o instanceof Param p && name.equals(p.name) && value.equals(p.value);
    }

    @Override
    public int hashCode() {
      return 31 * name.hashCode() + value.hashCode();
    }
  }

  public FilterRef {
    // stable insertion sort by name: the values of a list parameter keep their order (no lambda, as above)
    List<Param> sorted = new ArrayList<>(params.size());
    for (Param p : params) {
      int i = sorted.size();
      while (i > 0 && sorted.get(i - 1).name().compareTo(p.name()) > 0) {
        i--;
      }
      sorted.add(i, p);
    }
    params = List.copyOf(sorted);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof FilterRef f && filter.equals(f.filter) && params.equals(f.params);
  }

  @Override
  public int hashCode() {
    return 31 * filter.hashCode() + params.hashCode();
  }

  /** Whether uncloud-hook manages this filterref (libvirt's own or an operator's filters are left alone). */
  public boolean ours() {
    return isOurs(filter);
  }

  public static boolean isOurs(String filter) {
    return filter != null && filter.startsWith(PREFIX);
  }

  /** The values of one parameter, in order; empty when absent. */
  public List<String> values(String name) {
    List<String> out = new ArrayList<>();
    for (Param p : params) {
      if (p.name().equals(name)) {
        out.add(p.value());
      }
    }
    return out;
  }

  /**
   * The element as libvirt formats it, starting at {@code <filterref}: children one level deeper than
   * {@code indent} (the filterref's own indentation) by {@code step}; with a null {@code indent} (the
   * filterref shares its line with other elements) all on one line. Without parameters it is an empty
   * element.
   */
  public String render(String indent, String step) {
    StringBuilder b = new StringBuilder("<filterref filter='").append(escape(filter)).append('\'');
    if (params.isEmpty()) {
      return b.append("/>").toString();
    }
    b.append(indent == null ? ">" : ">\n");
    for (Param p : params) {
      if (indent != null) {
        b.append(indent).append(step);
      }
      b.append("<parameter name='").append(escape(p.name())).append("' value='").append(escape(p.value()))
          .append(indent == null ? "'/>" : "'/>\n");
    }
    return b.append(indent == null ? "" : indent).append("</filterref>").toString();
  }

  /** Short human form for messages: {@code uncloud-clean-traffic(IPV4=192.0.2.10/32, ...)}. */
  public String describe() {
    return filter + (params.isEmpty() ? "" : " " + NwfilterBackend.describeParams(this));
  }

  private static String escape(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")
        .replace("\"", "&quot;");
  }
}
