package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * An in-memory nft for the statements {@link NftScript} writes (like knftables' fake): applies a
 * script atomically to a model of our table, keeps the scripts it got, and shows the table as
 * {@link NftState}. Rule keys are the rule's text, so "canonical" is the script applied to an empty
 * table. Statements it does not know fail the test.
 */
final class FakeNft implements NftRunner {
  private static final String T = "bridge uncloud";
  private static final Pattern ADD_TABLE = Pattern.compile("add table " + T + "( \\{.*\\})?");
  private static final Pattern ADD_MAP = Pattern.compile("add map " + T + " (\\S+) \\{ type (\\S+) : (\\S+);.*\\}");
  private static final Pattern ADD_BASE =
      Pattern.compile("add chain " + T + " (\\S+) \\{ type (\\S+) hook (\\S+) priority (-?\\d+); policy (\\S+); \\}");
  private static final Pattern ADD_CHAIN = Pattern.compile("add chain " + T + " (\\S+)");
  private static final Pattern FLUSH = Pattern.compile("flush chain " + T + " (\\S+)");
  private static final Pattern DEL_CHAIN = Pattern.compile("delete chain " + T + " (\\S+)");
  private static final Pattern RULE = Pattern.compile("add rule " + T + " (\\S+) (.*?)(?: comment \"([^\"]*)\")?");
  private static final Pattern ADD_ELEM =
      Pattern.compile("add element " + T + " (\\S+) \\{ \"([^\"]+)\"(?: comment \"([^\"]*)\")? : (.+) \\}");
  private static final Pattern DEL_ELEM = Pattern.compile("delete element " + T + " (\\S+) \\{ \"([^\"]+)\" \\}");

  private static final class Table {
    boolean exists;
    String mapType;
    final Map<String, NftState.Element> elements = new LinkedHashMap<>();
    final Map<String, String> hooks = new LinkedHashMap<>();
    final Map<String, List<NftState.Rule>> chains = new LinkedHashMap<>();

    Table copy() {
      Table t = new Table();
      t.exists = exists;
      t.mapType = mapType;
      t.elements.putAll(elements);
      t.hooks.putAll(hooks);
      chains.forEach((k, v) -> t.chains.put(k, new ArrayList<>(v)));
      return t;
    }
  }

  private Table table = new Table();
  final List<String> scripts = new ArrayList<>();

  @Override
  public void apply(String script) {
    scripts.add(script);
    table = run(table.copy(), script);
  }

  @Override
  public String run(String... args) {
    throw new UnsupportedOperationException("FakeNft: use state()");
  }

  @Override
  public String canonical(String script) {
    throw new UnsupportedOperationException("FakeNft: use canonicalState()");
  }

  /** The script applied to an empty table, as this fake stores it. */
  static NftState canonicalState(String script) {
    return state(run(new Table(), script));
  }

  NftState state() {
    return state(table);
  }

  /** Lets traffic hit the {@code index}th rule of a chain. */
  void count(String chain, int index, long packets, long bytes) {
    NftState.Rule r = table.chains.get(chain).get(index);
    table.chains.get(chain).set(index, new NftState.Rule(r.key(), r.comment(), r.countsDrops(), r.packets() + packets, r.bytes() + bytes));
  }

  /** An operator's hand edit: deletes the rule with this comment. */
  void deleteRule(String chain, String comment) {
    if (!table.chains.get(chain).removeIf(r -> comment.equals(r.comment()))) {
      throw new AssertionError("no rule '" + comment + "' in " + chain);
    }
  }

  /** An operator's (or a crash's) leftover. */
  void handEdit(String script) {
    table = run(table.copy(), script);
  }

  private static NftState state(Table t) {
    if (!t.exists) {
      return NftState.ABSENT;
    }
    Map<String, NftState.Chain> chains = new LinkedHashMap<>();
    t.chains.forEach((k, v) -> chains.put(k, new NftState.Chain(k, t.hooks.get(k), List.copyOf(v))));
    NftState.PortsMap ports = t.mapType == null ? null : new NftState.PortsMap(t.mapType, Map.copyOf(t.elements));
    return new NftState(true, chains, ports, List.of());
  }

  private static Table run(Table t, String script) {
    for (String line : script.split("\n")) {
      if (line.isBlank()) {
        continue;
      }
      step(t, line);
    }
    return t;
  }

  private static void step(Table t, String line) {
    Matcher m;
    if (ADD_TABLE.matcher(line).matches()) {
      t.exists = true;
    } else if (line.equals("delete table " + T)) {
      need(t.exists, line);
      Table empty = new Table();
      t.exists = false;
      t.mapType = null;
      t.elements.clear();
      t.hooks.clear();
      t.chains.clear();
      t.exists = empty.exists;
    } else if ((m = ADD_MAP.matcher(line)).matches()) {
      need(t.exists, line);
      String type = m.group(2) + " : " + m.group(3);
      if (t.mapType != null && !t.mapType.equals(type)) {
        throw fail(line, "File exists (map has type " + t.mapType + ")");
      }
      t.mapType = type;
    } else if ((m = ADD_BASE.matcher(line)).matches()) {
      need(t.exists, line);
      String hook = m.group(2) + " " + m.group(3) + " " + m.group(4) + " " + m.group(5);
      if (t.chains.containsKey(m.group(1)) && !hook.equals(t.hooks.get(m.group(1)))) {
        throw fail(line, "Operation not supported (chain " + m.group(1) + " is " + t.hooks.get(m.group(1)) + ")");
      }
      t.chains.putIfAbsent(m.group(1), new ArrayList<>());
      t.hooks.put(m.group(1), hook);
    } else if ((m = ADD_CHAIN.matcher(line)).matches()) {
      need(t.exists, line);
      t.chains.putIfAbsent(m.group(1), new ArrayList<>());
    } else if ((m = FLUSH.matcher(line)).matches()) {
      need(t.chains.containsKey(m.group(1)), line);
      t.chains.get(m.group(1)).clear();
    } else if ((m = DEL_CHAIN.matcher(line)).matches()) {
      need(t.chains.containsKey(m.group(1)), line);
      for (NftState.Element e : t.elements.values()) {
        if (e.verdict().equals("jump " + m.group(1))) {
          throw fail(line, "Device or resource busy (map element " + e.tap() + " jumps to it)");
        }
      }
      t.chains.remove(m.group(1));
      t.hooks.remove(m.group(1));
    } else if ((m = RULE.matcher(line)).matches()) {
      need(t.chains.containsKey(m.group(1)), line);
      String expr = m.group(2);
      String comment = m.group(3);
      boolean drops = expr.contains("counter") && expr.endsWith("drop");
      t.chains.get(m.group(1)).add(new NftState.Rule(expr + (comment == null ? "" : " comment " + comment), comment, drops, 0, 0));
    } else if ((m = ADD_ELEM.matcher(line)).matches()) {
      need(t.mapType != null && m.group(1).equals(NftScript.MAP), line);
      String verdict = m.group(4);
      if (verdict.startsWith("jump ")) {
        need(t.chains.containsKey(verdict.substring(5)), line);
      }
      NftState.Element old = t.elements.get(m.group(2));
      if (old != null && !old.verdict().equals(verdict)) {
        throw fail(line, "File exists (element " + m.group(2) + " maps to " + old.verdict() + ")");
      }
      if (old == null || m.group(3) != null) {
        t.elements.put(m.group(2), new NftState.Element(m.group(2), verdict, m.group(3)));
      }
    } else if ((m = DEL_ELEM.matcher(line)).matches()) {
      need(t.elements.containsKey(m.group(2)), line);
      t.elements.remove(m.group(2));
    } else {
      throw new AssertionError("FakeNft does not know: " + line);
    }
  }

  private static void need(boolean ok, String line) {
    if (!ok) {
      throw fail(line, "No such file or directory");
    }
  }

  private static UncloudException fail(String line, String why) {
    return new UncloudException(ExitCodes.APPLY_FAILED, "nft failed: Error: " + why + " | " + line);
  }
}
