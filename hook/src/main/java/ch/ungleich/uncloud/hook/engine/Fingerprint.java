package ch.ungleich.uncloud.hook.engine;

import ch.ungleich.uncloud.hook.nft.ReconcilePlan;
import ch.ungleich.uncloud.hook.state.Owner;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * What a reconcile found true when it left the kernel exactly as the running domains demand: the
 * nf_tables generation then, a digest of everything the planner reads besides the kernel, the taps
 * whose MAC it read, and the notes it gave. The next reconcile that finds the same generation and
 * the same digest would plan against identical inputs, so its (pure) plan is the same empty plan
 * with the same notes: it skips the two table listings, the scratch load and the rule-by-rule
 * comparison. Any difference sends it down the full path. Pure; {@code StateStore} keeps the text.
 *
 * @param generation {@code NftRunner#generation()} after the kernel was made (or found) right
 * @param inputs {@link #inputs} then
 * @param taps the taps whose MAC went into {@code inputs}
 * @param notes the plan's notes (what was deliberately left alone), repeated by a skipped reconcile
 */
public record Fingerprint(String generation, String inputs, List<String> taps, List<ReconcilePlan.Change> notes) {
  private static final String MAGIC = "uncloud-hook reconcile fingerprint 1";

  /**
   * The digest of the planner's inputs other than the kernel's table: the program and nft that plan
   * and canonicalise ({@code identity}), the desired ruleset as rendered, every running domain's UUID,
   * the taps of domains with invalid metadata, the ownership records, and the MAC of each of {@code taps}
   * now (null: no such interface).
   */
  public static String inputs(
      String identity,
      String desiredScript,
      Desired d,
      Map<String, Owner> records,
      List<String> taps,
      Function<String, String> tapMac) {
    MessageDigest md;
    try {
      md = MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("no SHA-256 in this JVM", e);
    }
    update(md, "identity", identity);
    update(md, "script", desiredScript);
    update(md, "running", String.join(" ", new TreeSet<>(d.running())));
    update(md, "untouchable", String.join(" ", new TreeSet<>(d.untouchable())));
    StringBuilder r = new StringBuilder();
    new TreeMap<>(records).forEach((tap, o) -> r.append(tap).append(' ').append(o.encode()));
    update(md, "records", r.toString());
    StringBuilder m = new StringBuilder();
    for (String tap : taps) {
      m.append(tap).append(' ').append(tapMac.apply(tap)).append('\n');
    }
    update(md, "macs", m.toString());
    return HexFormat.of().formatHex(md.digest());
  }

  private static void update(MessageDigest md, String what, String value) {
    byte[] v = value.getBytes(StandardCharsets.UTF_8);
    md.update((what + " " + v.length + "\n").getBytes(StandardCharsets.UTF_8));
    md.update(v);
  }

  /** The taps whose MAC the planner may read and that can still be in the table after it ran. */
  public static List<String> taps(Set<String> desiredTaps, Set<String> untouchable, Set<String> records) {
    Set<String> all = new TreeSet<>(desiredTaps);
    all.addAll(untouchable);
    all.addAll(records);
    return List.copyOf(all);
  }

  /** The file's text. */
  public String encode() {
    StringBuilder b = new StringBuilder(MAGIC).append('\n');
    b.append("generation ").append(generation).append('\n');
    b.append("inputs ").append(inputs).append('\n');
    for (String t : taps) {
      b.append("tap ").append(t).append('\n');
    }
    for (ReconcilePlan.Change c : notes) {
      b.append("note ").append(String.join("\t", esc(c.action()), esc(c.tap()), esc(c.domain()), esc(c.uuid()), esc(c.detail())))
          .append('\n');
    }
    return b.toString();
  }

  /** The inverse of {@link #encode}; null for anything else (no file, an older format, a torn write). */
  public static Fingerprint decode(String text) {
    if (text == null || !text.startsWith(MAGIC + "\n") || !text.endsWith("\n")) {
      return null;
    }
    String generation = null;
    String inputs = null;
    List<String> taps = new ArrayList<>();
    List<ReconcilePlan.Change> notes = new ArrayList<>();
    for (String l : text.substring(MAGIC.length() + 1).split("\n")) {
      int sp = l.indexOf(' ');
      if (sp < 0) {
        return null;
      }
      String v = l.substring(sp + 1);
      switch (l.substring(0, sp)) {
        case "generation" -> generation = v;
        case "inputs" -> inputs = v;
        case "tap" -> taps.add(v);
        case "note" -> {
          String[] f = v.split("\t", -1);
          if (f.length != 5) {
            return null;
          }
          notes.add(new ReconcilePlan.Change(unesc(f[0]), unesc(f[1]), unesc(f[2]), unesc(f[3]), unesc(f[4])));
        }
        default -> {
          return null;
        }
      }
    }
    return generation == null || inputs == null ? null : new Fingerprint(generation, inputs, List.copyOf(taps), List.copyOf(notes));
  }

  private static String esc(String s) {
    return s == null ? "\\0" : s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n");
  }

  private static String unesc(String s) {
    if (s.equals("\\0")) {
      return null;
    }
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c == '\\' && i + 1 < s.length()) {
        char n = s.charAt(++i);
        b.append(n == 't' ? '\t' : n == 'n' ? '\n' : n);
      } else {
        b.append(c);
      }
    }
    return b.toString();
  }

  /** The number after the generation's last colon (the kernel's id), or -1. */
  static long id(String generation) {
    int i = generation == null ? -1 : generation.lastIndexOf(':');
    try {
      return i < 0 ? -1 : Long.parseLong(generation.substring(i + 1));
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  /** Whether {@code after} is {@code before} plus exactly one transaction, in the same namespace of the same boot. */
  static boolean next(String before, String after) {
    if (before == null || after == null) {
      return false;
    }
    int i = before.lastIndexOf(':');
    int j = after.lastIndexOf(':');
    return i > 0 && j > 0 && before.substring(0, i).equals(after.substring(0, j))
        && id(before) >= 0 && id(after) == ((id(before) + 1) & 0xffffffffL);
  }
}
