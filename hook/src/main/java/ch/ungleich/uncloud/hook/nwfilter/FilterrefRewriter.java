package ch.ungleich.uncloud.hook.nwfilter;

import java.util.ArrayList;
import java.util.List;

/**
 * Rewrites the {@code <filterref>} of NICs in a libvirt domain document as text, leaving every other
 * byte as it was. libvirt takes the hook's {@code migrate}/{@code restore} output as the domain
 * definition and checks it against the running VM's ABI; a DOM or JAXB round trip would reorder
 * attributes, drop unknown elements and namespaces, and change quoting and whitespace, while a
 * filterref is no part of the ABI. So this class only finds element boundaries (a small XML tokenizer
 * that honours comments, CDATA, processing instructions and quoted attribute values) and splices.
 *
 * <p>The input must already have been read successfully by {@code DomainReader}: the tokenizer assumes
 * a well-formed document and fails with {@link IllegalArgumentException} on anything it does not
 * expect (a DOCTYPE, an unterminated construct).
 */
public final class FilterrefRewriter {
  private FilterrefRewriter() {}

  /** Where one {@code /domain/devices/interface} element is and what it holds. */
  public record Nic(
      int index, String mac, int start, int end, int filterrefStart, int filterrefEnd, int contentEnd) {
    public boolean hasFilterref() {
      return filterrefStart >= 0;
    }
  }

  /** A change to one NIC: the new filterref, or null to remove ours. */
  public record Edit(int index, FilterRef filterref) {}

  /** Result of {@link #rewrite}: the new document and, per edited NIC, its old and new element text. */
  public record Result(String xml, List<NicText> nics) {}

  /** One edited NIC's {@code <interface>…</interface>} before and after. */
  public record NicText(int index, String mac, String before, String after) {}

  /** The NICs of a domain document in document order, as {@code DomainReader} counts them. */
  public static List<Nic> scan(String xml) {
    return new Scanner(xml).run();
  }

  /**
   * Applies the edits. NICs without an edit are untouched, and so is everything outside the edited
   * filterrefs: a replaced filterref keeps its place and indentation, a new one is added as the last
   * child of its {@code <interface>} with the indentation of the other children, a removed one takes
   * its line with it.
   */
  public static Result rewrite(String xml, List<Edit> edits) {
    List<Nic> nics = scan(xml);
    StringBuilder out = new StringBuilder();
    List<NicText> texts = new ArrayList<>();
    int pos = 0;
    for (Nic n : nics) {
      Edit e = null;
      for (Edit x : edits) {
        if (x.index() == n.index()) {
          e = x;
        }
      }
      if (e == null) {
        continue;
      }
      String before = xml.substring(n.start(), n.end());
      String after = edit(xml, n, e.filterref());
      out.append(xml, pos, n.start()).append(after);
      pos = n.end();
      texts.add(new NicText(n.index(), n.mac(), before, after));
    }
    for (Edit x : edits) {
      if (x.index() < 0 || x.index() >= nics.size()) {
        throw new IllegalArgumentException("no interface #" + x.index() + " in the document");
      }
    }
    out.append(xml, pos, xml.length());
    return new Result(out.toString(), List.copyOf(texts));
  }

  /** The {@code <interface>} element of {@code n} with its filterref set to {@code f} (null: removed). */
  private static String edit(String xml, Nic n, FilterRef f) {
    String el = xml.substring(n.start(), n.end());
    int base = n.start();
    String ifIndent = indentBefore(xml, n.start());
    if (n.hasFilterref()) {
      int fs = n.filterrefStart() - base;
      int fe = n.filterrefEnd() - base;
      if (f == null) {
        int lineStart = lineStartIfBlank(el, fs);
        int from = lineStart < 0 ? fs : lineStart - 1; // with its line's newline and indentation
        return el.substring(0, from) + el.substring(fe);
      }
      String indent = indentBefore(xml, n.filterrefStart());
      String step = step(ifIndent, indent);
      return el.substring(0, fs) + f.render(indent, step) + el.substring(fe);
    }
    if (f == null) {
      return el;
    }
    // insert as the last child, before </interface>
    int ce = n.contentEnd() - base;
    String childIndent = childIndent(xml, n);
    int nl = lastNewlineOfBlankTail(el, ce);
    if (nl >= 0 && childIndent != null) {
      return el.substring(0, nl) + "\n" + childIndent + f.render(childIndent, step(ifIndent, childIndent))
          + el.substring(nl);
    }
    return el.substring(0, ce) + f.render(null, "") + el.substring(ce); // a one-line <interface>
  }

  private static String step(String outer, String inner) {
    if (outer != null && inner != null && inner.startsWith(outer) && inner.length() > outer.length()) {
      return inner.substring(outer.length());
    }
    return "  ";
  }

  /** The indentation of the first child element of the NIC, if it starts its own line. */
  private static String childIndent(String xml, Nic n) {
    int gt = tagEnd(xml, n.start());
    int i = gt + 1;
    while (i < n.contentEnd() && Character.isWhitespace(xml.charAt(i))) {
      i++;
    }
    return i < n.contentEnd() ? indentBefore(xml, i) : null;
  }

  /** The blanks between the line start and {@code at}, or null if anything else precedes it on its line. */
  private static String indentBefore(String s, int at) {
    int i = at;
    while (i > 0 && (s.charAt(i - 1) == ' ' || s.charAt(i - 1) == '\t')) {
      i--;
    }
    return i == 0 || s.charAt(i - 1) == '\n' ? s.substring(i, at) : null;
  }

  private static int lineStartIfBlank(String s, int at) {
    int i = at;
    while (i > 0 && (s.charAt(i - 1) == ' ' || s.charAt(i - 1) == '\t')) {
      i--;
    }
    return i > 0 && s.charAt(i - 1) == '\n' ? i : -1;
  }

  /** The newline that starts the blank run ending at {@code at}, or -1. */
  private static int lastNewlineOfBlankTail(String s, int at) {
    int i = at;
    while (i > 0 && (s.charAt(i - 1) == ' ' || s.charAt(i - 1) == '\t')) {
      i--;
    }
    return i > 0 && s.charAt(i - 1) == '\n' ? i - 1 : -1;
  }

  /** Index of the {@code >} closing the tag that starts at {@code lt}, honouring quoted values. */
  static int tagEnd(String s, int lt) {
    char quote = 0;
    for (int i = lt + 1; i < s.length(); i++) {
      char c = s.charAt(i);
      if (quote != 0) {
        if (c == quote) {
          quote = 0;
        }
      } else if (c == '\'' || c == '"') {
        quote = c;
      } else if (c == '>') {
        return i;
      }
    }
    throw new IllegalArgumentException("unterminated tag at offset " + lt);
  }

  /** The element path tracker. */
  private static final class Scanner {
    private final String s;
    private final List<String> stack = new ArrayList<>();
    private final List<Nic> nics = new ArrayList<>();
    private int nicStart = -1;
    private String nicMac;
    private int frStart = -1;
    private int frEnd = -1;

    Scanner(String s) {
      this.s = s;
    }

    List<Nic> run() {
      int i = 0;
      while (true) {
        int lt = s.indexOf('<', i);
        if (lt < 0) {
          break;
        }
        if (s.startsWith("<!--", lt)) {
          i = after(lt, "-->");
        } else if (s.startsWith("<![CDATA[", lt)) {
          i = after(lt, "]]>");
        } else if (s.startsWith("<?", lt)) {
          i = after(lt, "?>");
        } else if (s.startsWith("<!", lt)) {
          throw new IllegalArgumentException("unexpected <! construct (DOCTYPE?) at offset " + lt);
        } else if (s.startsWith("</", lt)) {
          int gt = tagEnd(s, lt);
          endTag(lt, gt + 1);
          i = gt + 1;
        } else {
          int gt = tagEnd(s, lt);
          boolean empty = s.charAt(gt - 1) == '/';
          String tag = s.substring(lt + 1, empty ? gt - 1 : gt);
          String name = name(tag);
          startTag(name, tag, lt);
          if (empty) {
            endTag(lt, gt + 1);
          }
          i = gt + 1;
        }
      }
      if (!stack.isEmpty()) {
        throw new IllegalArgumentException("unclosed <" + stack.get(stack.size() - 1) + ">");
      }
      return List.copyOf(nics);
    }

    private int after(int from, String end) {
      int e = s.indexOf(end, from);
      if (e < 0) {
        throw new IllegalArgumentException("unterminated construct at offset " + from);
      }
      return e + end.length();
    }

    private boolean at(String... path) {
      if (stack.size() != path.length) {
        return false;
      }
      for (int k = 0; k < path.length; k++) {
        if (!stack.get(k).equals(path[k])) {
          return false;
        }
      }
      return true;
    }

    private void startTag(String name, String tag, int lt) {
      stack.add(name);
      if (at("domain", "devices", "interface")) {
        nicStart = lt;
        nicMac = null;
        frStart = -1;
        frEnd = -1;
      } else if (at("domain", "devices", "interface", "mac")) {
        nicMac = attribute(tag, "address");
      } else if (at("domain", "devices", "interface", "filterref")) {
        if (frStart >= 0) {
          throw new IllegalArgumentException("interface with two <filterref> at offset " + lt);
        }
        frStart = lt;
      }
    }

    private void endTag(int lt, int end) {
      if (stack.isEmpty()) {
        throw new IllegalArgumentException("end tag without start at offset " + lt);
      }
      if (at("domain", "devices", "interface", "filterref")) {
        frEnd = end;
      } else if (at("domain", "devices", "interface")) {
        int contentEnd = s.startsWith("</", lt) ? lt : end;
        nics.add(new Nic(nics.size(), nicMac, nicStart, end, frStart, frEnd, contentEnd));
      }
      stack.remove(stack.size() - 1);
    }
  }

  private static String name(String tag) {
    int i = 0;
    while (i < tag.length() && !Character.isWhitespace(tag.charAt(i)) && tag.charAt(i) != '/') {
      i++;
    }
    return tag.substring(0, i);
  }

  /** An attribute's raw value in a start tag's text, or null. */
  static String attribute(String tag, String attr) {
    int i = name(tag).length();
    while (i < tag.length()) {
      while (i < tag.length() && Character.isWhitespace(tag.charAt(i))) {
        i++;
      }
      int eq = tag.indexOf('=', i);
      if (eq < 0) {
        return null;
      }
      String n = tag.substring(i, eq).strip();
      int q = eq + 1;
      while (q < tag.length() && Character.isWhitespace(tag.charAt(q))) {
        q++;
      }
      if (q >= tag.length()) {
        return null;
      }
      char quote = tag.charAt(q);
      int close = tag.indexOf(quote, q + 1);
      if (close < 0) {
        return null;
      }
      if (n.equals(attr)) {
        return tag.substring(q + 1, close);
      }
      i = close + 1;
    }
    return null;
  }
}
