package ch.ungleich.uncloud.tests.lab;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** {@code nft -j list table bridge uncloud}, parsed into what the tests assert on. */
public record NftTable(
    boolean exists, Map<String, Map<String, Element>> maps, Map<String, Chain> chains) {
  private static final ObjectMapper JSON = new ObjectMapper();

  /** A map element: key, verdict ({@code goto}, {@code jump}, {@code accept}, ...), chain, comment. */
  public record Element(String key, String verdict, String target, String comment) {}

  /** A chain; {@code hook} is null for regular chains. Rules are the raw JSON {@code expr} arrays. */
  public record Chain(String name, String type, String hook, Integer prio, String policy,
      List<JsonNode> rules) {
    /** True if the rule's expressions contain a {@code drop} verdict. */
    public static boolean drops(JsonNode rule) {
      for (JsonNode e : rule) {
        if (e.has("drop")) {
          return true;
        }
      }
      return false;
    }

    /** Packets counted by the chain's rules that drop (the per-NIC drop count). */
    public long droppedPackets() {
      long n = 0;
      for (JsonNode r : rules) {
        if (drops(r)) {
          for (JsonNode e : r) {
            n += e.path("counter").path("packets").asLong(0);
          }
        }
      }
      return n;
    }

    public static boolean counts(JsonNode rule) {
      for (JsonNode e : rule) {
        if (e.has("counter")) {
          return true;
        }
      }
      return false;
    }
  }

  public static NftTable absent() {
    return new NftTable(false, Map.of(), Map.of());
  }

  public static NftTable parse(String json) {
    JsonNode root;
    try {
      root = JSON.readTree(json);
    } catch (JsonProcessingException e) {
      throw new IllegalArgumentException("not nft json: " + json, e);
    }
    boolean exists = false;
    Map<String, Map<String, Element>> maps = new LinkedHashMap<>();
    Map<String, Chain> chains = new LinkedHashMap<>();
    Map<String, List<JsonNode>> rules = new LinkedHashMap<>();
    for (JsonNode item : root.path("nftables")) {
      if (item.has("table")) {
        exists = true;
      } else if (item.has("map")) {
        JsonNode m = item.get("map");
        Map<String, Element> elems = new LinkedHashMap<>();
        for (JsonNode pair : m.path("elem")) {
          Element e = element(pair.get(0), pair.get(1));
          elems.put(e.key(), e);
        }
        maps.put(m.get("name").asText(), elems);
      } else if (item.has("chain")) {
        JsonNode c = item.get("chain");
        String name = c.get("name").asText();
        rules.put(name, new ArrayList<>());
        chains.put(name, new Chain(name, text(c, "type"), text(c, "hook"),
            c.has("prio") ? c.get("prio").asInt() : null, text(c, "policy"), rules.get(name)));
      } else if (item.has("rule")) {
        JsonNode r = item.get("rule");
        rules.computeIfAbsent(r.get("chain").asText(), k -> new ArrayList<>()).add(r.get("expr"));
      }
    }
    return new NftTable(exists, maps, chains);
  }

  private static Element element(JsonNode key, JsonNode value) {
    String k;
    String comment = null;
    if (key.isObject() && key.has("elem")) { // an element with a comment (or timeout, ...)
      k = key.get("elem").get("val").asText();
      comment = text(key.get("elem"), "comment");
    } else {
      k = key.asText();
    }
    String verdict = value.fieldNames().hasNext() ? value.fieldNames().next() : value.asText();
    String target = value.isObject() ? value.path(verdict).path("target").asText(null) : null;
    return new Element(k, verdict, target, comment);
  }

  private static String text(JsonNode n, String field) {
    return n.has(field) ? n.get(field).asText() : null;
  }

  /** Elements of map {@code ports} (empty if the table or map is absent). */
  public Map<String, Element> ports() {
    return maps.getOrDefault("ports", Map.of());
  }

  public Optional<Element> port(String tap) {
    return Optional.ofNullable(ports().get(tap));
  }
}
