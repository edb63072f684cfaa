package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Parses {@code nft -j list table bridge uncloud} (JSON schema version 1, nft 0.9.x to 1.1.x) into
 * {@link NftState}. Pure. CLI only: the hook never loads Jackson.
 */
public final class NftJson {
  private static final ObjectMapper MAPPER = new ObjectMapper();

  private NftJson() {}

  /** Parses nft's JSON; objects of other tables (there should be none) are ignored. */
  public static NftState parse(String json) {
    JsonNode root;
    try {
      root = MAPPER.readTree(json);
    } catch (JsonProcessingException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot parse nft's JSON output: " + e.getOriginalMessage());
    }
    JsonNode items = root == null ? null : root.get("nftables");
    if (items == null || !items.isArray()) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "nft's JSON output has no \"nftables\" array");
    }
    boolean exists = false;
    Map<String, String> hooks = new LinkedHashMap<>();
    Map<String, List<NftState.Rule>> rules = new LinkedHashMap<>();
    NftState.PortsMap ports = null;
    List<String> others = new ArrayList<>();
    for (JsonNode item : items) {
      if (item.has("table")) {
        JsonNode t = item.get("table");
        exists |= NftScript.TABLE.equals(t.path("name").asText()) && NftScript.FAMILY.equals(t.path("family").asText());
      } else if (item.has("chain")) {
        JsonNode c = item.get("chain");
        if (!ours(c)) {
          continue;
        }
        String name = c.path("name").asText();
        rules.putIfAbsent(name, new ArrayList<>());
        hooks.put(
            name,
            c.has("hook")
                ? c.path("type").asText() + " " + c.path("hook").asText() + " " + c.path("prio").asText() + " "
                    + c.path("policy").asText("accept")
                : null);
      } else if (item.has("rule")) {
        JsonNode r = item.get("rule");
        if (!ours(r)) {
          continue;
        }
        rules.computeIfAbsent(r.path("chain").asText(), k -> new ArrayList<>()).add(rule(r));
      } else if (item.has("map")) {
        JsonNode m = item.get("map");
        if (!ours(m)) {
          continue;
        }
        if (NftScript.MAP.equals(m.path("name").asText())) {
          ports = ports(m);
        } else {
          others.add("map " + m.path("name").asText());
        }
      } else if (item.has("set")) {
        JsonNode s = item.get("set");
        if (ours(s)) {
          others.add("set " + s.path("name").asText());
        }
      } else if (!item.has("metainfo")) {
        String kind = item.fieldNames().hasNext() ? item.fieldNames().next() : "?";
        JsonNode o = item.get(kind);
        if (o != null && ours(o)) {
          others.add(kind + " " + o.path("name").asText());
        }
      }
    }
    Map<String, NftState.Chain> chains = new LinkedHashMap<>();
    for (Map.Entry<String, List<NftState.Rule>> e : rules.entrySet()) {
      chains.put(e.getKey(), new NftState.Chain(e.getKey(), hooks.get(e.getKey()), List.copyOf(e.getValue())));
    }
    if (!exists) {
      return NftState.ABSENT;
    }
    return new NftState(true, chains, ports, List.copyOf(others));
  }

  private static boolean ours(JsonNode o) {
    return NftScript.TABLE.equals(o.path("table").asText()) && NftScript.FAMILY.equals(o.path("family").asText());
  }

  /** A rule as the comparisons key it: expressions with counters zeroed, and the comment. */
  static NftState.Rule rule(JsonNode r) {
    ArrayNode normal = JsonNodeFactory.instance.arrayNode();
    long packets = 0;
    long bytes = 0;
    boolean counter = false;
    boolean drop = false;
    for (JsonNode e : r.path("expr")) {
      if (e.has("counter")) {
        counter = true;
        JsonNode c = e.get("counter");
        packets += c.path("packets").asLong();
        bytes += c.path("bytes").asLong();
        ObjectNode zero = JsonNodeFactory.instance.objectNode();
        zero.putObject("counter");
        normal.add(zero);
        continue;
      }
      if (e.has("drop")) {
        drop = true;
      }
      normal.add(e);
    }
    String comment = r.has("comment") ? r.get("comment").asText() : null;
    String key = normal + (comment == null ? "" : " comment " + comment);
    return new NftState.Rule(key, comment, counter && drop, packets, bytes);
  }

  private static NftState.PortsMap ports(JsonNode m) {
    String type = m.path("type").asText() + " : " + m.path("map").asText();
    Map<String, NftState.Element> elements = new LinkedHashMap<>();
    for (JsonNode pair : m.path("elem")) {
      if (!pair.isArray() || pair.size() != 2) {
        continue;
      }
      JsonNode k = pair.get(0);
      String tap;
      String comment = null;
      if (k.has("elem")) {
        tap = k.get("elem").path("val").asText();
        comment = k.get("elem").has("comment") ? k.get("elem").get("comment").asText() : null;
      } else {
        tap = k.asText();
      }
      elements.put(tap, new NftState.Element(tap, verdict(pair.get(1)), comment));
    }
    return new NftState.PortsMap(type, elements);
  }

  /** {@code {"jump": {"target": "port-vnet0"}}} becomes {@code "jump port-vnet0"}; {@code {"drop": null}} "drop". */
  private static String verdict(JsonNode v) {
    if (v.isObject() && v.fieldNames().hasNext()) {
      String kind = v.fieldNames().next();
      JsonNode t = v.get(kind);
      return t != null && t.has("target") ? kind + " " + t.get("target").asText() : kind;
    }
    return v.asText();
  }
}
