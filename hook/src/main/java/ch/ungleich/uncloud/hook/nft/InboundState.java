package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The two inbound tables ({@link InboundScript}) as nft holds them: {@code nft -j -p list table bridge
 * uncloud-inbound} and {@code ... inet uncloud-inbound}, one JSON document each (-p: protocols as
 * numbers, as {@link InboundScript#elements} writes them). Pure; CLI only (Jackson), like {@link NftJson}.
 *
 * <p>Chains are keyed {@code "<family> <chain>"} and compared by their rules' keys (expressions with
 * counters zeroed, plus the comment) against the prelude loaded into a scratch namespace. Set elements
 * are turned back into the text {@link InboundScript#elements} writes ({@code "vnet0" . 52:54:00:aa:bb:01},
 * {@code 192.0.2.10 . 6 . 80-81 . 0.0.0.0/0}), so that what is installed is compared with what each
 * NIC demands element by element and a missing one is named with its tap.
 *
 * @param tables the families whose table exists ({@code bridge}, {@code inet})
 * @param chains every chain by {@code "<family> <name>"}
 * @param sets every set by {@code "<family> <name>"}
 */
public record InboundState(Set<String> tables, Map<String, NftState.Chain> chains, Map<String, Elements> sets) {
  private static final ObjectMapper MAPPER = new ObjectMapper();

  /** A set: its type as nft lists it (e.g. {@code ifname . ether_addr}, flags) and its elements as text. */
  public record Elements(String type, Set<String> elements) {}

  /** Neither table. */
  public static final InboundState ABSENT = new InboundState(Set.of(), Map.of(), Map.of());

  /** Whether both tables exist. */
  public boolean present() {
    return tables.contains("bridge") && tables.contains("inet");
  }

  /**
   * Parses nft's output: any number of JSON documents one after the other (null or blank: none);
   * objects of other tables are ignored.
   */
  public static InboundState parse(String... outputs) {
    Set<String> tables = new LinkedHashSet<>();
    Map<String, String> hooks = new LinkedHashMap<>();
    Map<String, List<NftState.Rule>> rules = new LinkedHashMap<>();
    Map<String, Elements> sets = new LinkedHashMap<>();
    for (String out : outputs) {
      if (out == null || out.isBlank()) {
        continue;
      }
      try (MappingIterator<JsonNode> docs = MAPPER.readerFor(JsonNode.class).readValues(out)) {
        while (docs.hasNext()) {
          JsonNode items = docs.next().get("nftables");
          if (items == null || !items.isArray()) {
            throw new UncloudException(ExitCodes.APPLY_FAILED, "nft's JSON output has no \"nftables\" array");
          }
          for (JsonNode item : items) {
            read(item, tables, hooks, rules, sets);
          }
        }
      } catch (IOException | RuntimeException e) {
        if (e instanceof UncloudException u) {
          throw u;
        }
        throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot parse nft's JSON output: " + e.getMessage());
      }
    }
    Map<String, NftState.Chain> chains = new LinkedHashMap<>();
    for (Map.Entry<String, List<NftState.Rule>> e : rules.entrySet()) {
      chains.put(e.getKey(), new NftState.Chain(e.getKey(), hooks.get(e.getKey()), List.copyOf(e.getValue())));
    }
    return new InboundState(Set.copyOf(tables), chains, sets);
  }

  private static void read(JsonNode item, Set<String> tables, Map<String, String> hooks,
      Map<String, List<NftState.Rule>> rules, Map<String, Elements> sets) {
    if (item.has("table")) {
      JsonNode t = item.get("table");
      if (InboundScript.TABLE.equals(t.path("name").asText())) {
        tables.add(t.path("family").asText());
      }
    } else if (item.has("chain")) {
      JsonNode c = item.get("chain");
      if (ours(c)) {
        String key = c.path("family").asText() + " " + c.path("name").asText();
        rules.putIfAbsent(key, new ArrayList<>());
        hooks.put(key, c.has("hook")
            ? c.path("type").asText() + " " + c.path("hook").asText() + " " + c.path("prio").asText() + " "
                + c.path("policy").asText("accept")
            : null);
      }
    } else if (item.has("rule")) {
      JsonNode r = item.get("rule");
      if (ours(r)) {
        rules.computeIfAbsent(r.path("family").asText() + " " + r.path("chain").asText(), k -> new ArrayList<>()).add(NftJson.rule(r));
      }
    } else if (item.has("set")) {
      JsonNode s = item.get("set");
      if (ours(s)) {
        List<String> types = new ArrayList<>();
        if (s.path("type").isArray()) {
          s.path("type").forEach(t -> types.add(t.asText()));
        } else {
          types.add(s.path("type").asText());
        }
        Set<String> elements = new LinkedHashSet<>();
        for (JsonNode e : s.path("elem")) {
          elements.add(element(e, types));
        }
        String type = String.join(" . ", types) + (s.has("flags") ? " flags " + s.get("flags") : "");
        sets.put(s.path("family").asText() + " " + s.path("name").asText(), new Elements(type, elements));
      }
    }
  }

  private static boolean ours(JsonNode o) {
    return InboundScript.TABLE.equals(o.path("table").asText());
  }

  /** One element in {@link InboundScript}'s text: components joined by " . ", ifnames quoted. */
  static String element(JsonNode e, List<String> types) {
    if (e.has("elem")) {
      e = e.get("elem").get("val");
    }
    if (e.has("concat")) {
      List<String> parts = new ArrayList<>();
      int i = 0;
      for (JsonNode p : e.get("concat")) {
        parts.add(value(p, i < types.size() ? types.get(i) : ""));
        i++;
      }
      return String.join(" . ", parts);
    }
    return value(e, types.isEmpty() ? "" : types.get(0));
  }

  private static String value(JsonNode v, String type) {
    if (v.has("prefix")) {
      return v.get("prefix").path("addr").asText() + "/" + v.get("prefix").path("len").asText();
    }
    if (v.has("range")) {
      return value(v.get("range").get(0), type) + "-" + value(v.get("range").get(1), type);
    }
    String s = v.asText();
    return type.equals("ifname") ? "\"" + s + "\"" : s;
  }
}
