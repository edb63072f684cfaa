package ch.ungleich.uncloud.hook.source;

import ch.ungleich.uncloud.hook.UncloudException;
import ch.ungleich.uncloud.hook.model.IpPrefix;
import ch.ungleich.uncloud.hook.model.Mac;
import ch.ungleich.uncloud.libvirtxml.domain.Domain;
import ch.ungleich.uncloud.libvirtxml.domain.Interface;
import ch.ungleich.uncloud.libvirtxml.firewall.Firewall;
import ch.ungleich.uncloud.libvirtxml.firewall.FirewallInterface;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadConstraints;
import java.io.IOException;
import java.io.StringWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A domain's etcd value -> our metadata element ({@link Firewall}), so that the policy is built by the
 * same {@code PolicyBuilder} and refused with the same errors as the XML metadata. Pure. Two forms:
 *
 * <ul>
 *   <li>the uncloud design's, {@code {"ipv6": ["2001:db8:1::/64"], "ipv4": ["192.0.2.1/32"]}}: the
 *       addresses of the domain's one filterable NIC (bridge or network type); a domain with several
 *       is refused (which NIC would they belong to?);
 *   <li>per NIC, keyed by MAC, with everything the metadata can say:
 *       {@code {"interfaces": {"52:54:00:aa:bb:01": {"ipv4": [...], "ipv6": [...], "trusted": false,
 *       "ingress": [...], "egress": [...]}}}}; an allow is an object with the attributes of
 *       {@code <uc:allow>}: {@code {"protocol": "tcp", "port": "22", "from": "198.51.100.0/24"}}, all
 *       strings; {@code "ingress": []} is an empty {@code <uc:ingress/>}, no {@code ingress} key none.
 * </ul>
 *
 * <p>Strict like {@code firewall.xsd}: unknown keys, a duplicate key, a value of the wrong JSON type, an
 * IPv6 address under {@code ipv4} (or the reverse), a MAC that is no NIC of the domain, trailing data
 * and values over {@link #MAX_BYTES} are errors. jackson-core's streaming parser (no databind, no
 * reflection) reads it: about 15 ms of a hook call with the CDS archive.
 */
public final class EtcdValue {
  /** Larger values are refused unread: a VM's addresses fit many times in this. */
  public static final int MAX_BYTES = 64 * 1024;

  private static final JsonFactory JSON =
      JsonFactory.builder()
          .enable(com.fasterxml.jackson.core.StreamReadFeature.STRICT_DUPLICATE_DETECTION)
          .streamReadConstraints(StreamReadConstraints.builder().maxNestingDepth(8).build())
          .build();

  private EtcdValue() {}

  /**
   * Parses {@code json}, the value of {@code key}, for domain {@code d}.
   *
   * @throws UncloudException (invalid) naming the domain and the key
   */
  public static Firewall parse(String json, Domain d, String key) {
    String where = name(d) + " etcd key " + key;
    int bytes = json.length() > MAX_BYTES / 4 ? json.getBytes(java.nio.charset.StandardCharsets.UTF_8).length : json.length();
    if (bytes > MAX_BYTES) {
      throw UncloudException.invalid(where + ": value is " + bytes + " bytes, more than " + MAX_BYTES);
    }
    Object root;
    try (JsonParser p = JSON.createParser(json)) {
      JsonToken t = p.nextToken();
      if (t == null) {
        throw UncloudException.invalid(where + ": value is empty, not a JSON object");
      }
      root = value(p, t);
      if (p.nextToken() != null) {
        throw UncloudException.invalid(where + ": data after the JSON object");
      }
    } catch (JsonProcessingException e) {
      String at = e.getLocation() == null ? ""
          : " at line " + e.getLocation().getLineNr() + " column " + e.getLocation().getColumnNr();
      throw UncloudException.invalid(where + ": not valid JSON: " + printable(firstSentence(e.getOriginalMessage())) + at);
    } catch (IOException e) {
      throw UncloudException.invalid(where + ": cannot read the value: " + e.getMessage());
    }
    if (!(root instanceof Map<?, ?> top)) {
      throw UncloudException.invalid(where + ": value must be a JSON object, not " + type(root));
    }
    Firewall f = new Firewall();
    if (top.containsKey("interfaces")) {
      only(top, where, "interfaces");
      if (!(top.get("interfaces") instanceof Map<?, ?> nics)) {
        throw UncloudException.invalid(where + ": \"interfaces\" must be an object keyed by MAC, not "
            + type(top.get("interfaces")));
      }
      List<String> domainMacs = macs(d, false);
      Map<Mac, String> seen = new LinkedHashMap<>();
      for (Map.Entry<?, ?> e : nics.entrySet()) {
        String macText = (String) e.getKey();
        Mac mac;
        try {
          mac = Mac.parse(macText);
        } catch (UncloudException x) {
          throw UncloudException.invalid(where + ": interfaces: " + printable(x.getMessage()));
        }
        if (seen.put(mac, macText) != null) {
          throw UncloudException.invalid(where + ": interface " + mac + " is listed twice ('"
              + printable(seen.get(mac)) + "', '" + printable(macText) + "')");
        }
        if (!domainMacs.contains(mac.text())) {
          throw UncloudException.invalid(where + ": interface " + mac + " is not a NIC of this domain (its NICs: "
              + (domainMacs.isEmpty() ? "none" : String.join(", ", domainMacs)) + ")");
        }
        if (!(e.getValue() instanceof Map<?, ?> nic)) {
          throw UncloudException.invalid(where + ": interface " + mac + " must be an object, not " + type(e.getValue()));
        }
        String at = where + ": interface " + mac;
        only(nic, at, "ipv4", "ipv6", "trusted", "ingress", "egress");
        FirewallInterface fi = addresses(nic, at);
        fi.ingress = rules(nic, at, "ingress");
        fi.egress = rules(nic, at, "egress");
        fi.mac = mac.text();
        Object trusted = nic.get("trusted");
        if (trusted != null && !(trusted instanceof Boolean)) {
          throw UncloudException.invalid(at + ": \"trusted\" must be true or false, not " + type(trusted));
        }
        fi.trusted = Boolean.TRUE.equals(trusted) ? "true" : null;
        f.interfaces.add(fi);
      }
      return f;
    }
    only(top, where, "ipv4", "ipv6");
    List<String> filterable = macs(d, true);
    if (filterable.size() != 1) {
      throw UncloudException.invalid(where + ": the {\"ipv4\": [...], \"ipv6\": [...]} form is for a domain with one"
          + " bridged NIC; this one has " + filterable.size() + (filterable.isEmpty() ? "" : " (" + String.join(", ", filterable) + ")")
          + ": use {\"interfaces\": {MAC: {...}}}");
    }
    FirewallInterface fi = addresses(top, where);
    fi.mac = filterable.get(0);
    f.interfaces.add(fi);
    return f;
  }

  /**
   * The per-NIC form of our element, as {@code etcd put} and {@code etcd import} write it: MACs in the
   * order of the element, addresses as written there, {@code trusted} only when true.
   */
  public static String render(Firewall f) {
    StringWriter w = new StringWriter();
    try (JsonGenerator g = JSON.createGenerator(w)) {
      g.writeStartObject();
      g.writeObjectFieldStart("interfaces");
      for (FirewallInterface i : f.interfaces) {
        g.writeObjectFieldStart(Mac.parse(i.mac).text());
        List<String> v4 = new ArrayList<>();
        List<String> v6 = new ArrayList<>();
        for (FirewallInterface.Ip ip : i.ips) {
          String a = ip.address.strip();
          (a.contains(":") ? v6 : v4).add(a);
        }
        g.writeArrayFieldStart("ipv4");
        for (String a : v4) {
          g.writeString(a);
        }
        g.writeEndArray();
        g.writeArrayFieldStart("ipv6");
        for (String a : v6) {
          g.writeString(a);
        }
        g.writeEndArray();
        if (i.trusted != null && (i.trusted.strip().equals("true") || i.trusted.strip().equals("1"))) {
          g.writeBooleanField("trusted", true);
        }
        render(g, "ingress", i.ingress);
        render(g, "egress", i.egress);
        g.writeEndObject();
      }
      g.writeEndObject();
      g.writeEndObject();
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    return w.toString();
  }

  /** A rule list as an array of objects, the attributes as written; nothing when the element is absent. */
  private static void render(JsonGenerator g, String name, FirewallInterface.Rules rules) throws IOException {
    if (rules == null) {
      return;
    }
    g.writeArrayFieldStart(name);
    for (FirewallInterface.Allow a : rules.allows) {
      g.writeStartObject();
      String[][] attrs = {{"protocol", a.protocol}, {"port", a.port}, {"from", a.from}, {"to", a.to}};
      for (String[] kv : attrs) {
        if (kv[1] != null) {
          g.writeStringField(kv[0], kv[1].strip());
        }
      }
      g.writeEndObject();
    }
    g.writeEndArray();
  }

  /**
   * {@code ingress} or {@code egress} of a NIC: null when the key is absent, else an array of allow
   * objects with string attributes. Only the JSON shape is checked here; what the values mean (a known
   * protocol, a port only with tcp/udp, {@code from} only in ingress, at most 64) is
   * {@code PolicyBuilder}'s, with the XML's errors.
   */
  private static FirewallInterface.Rules rules(Map<?, ?> nic, String at, String direction) {
    if (!nic.containsKey(direction)) {
      return null;
    }
    Object v = nic.get(direction);
    if (!(v instanceof List<?> list)) {
      throw UncloudException.invalid(at + ": \"" + direction + "\" must be an array of rule objects, not " + type(v));
    }
    FirewallInterface.Rules rules = new FirewallInterface.Rules();
    for (int n = 0; n < list.size(); n++) {
      String where = at + ": " + direction + " rule " + (n + 1);
      if (!(list.get(n) instanceof Map<?, ?> rule)) {
        throw UncloudException.invalid(where + " must be an object such as {\"protocol\": \"tcp\", \"port\": \"22\"}, not "
            + type(list.get(n)));
      }
      only(rule, where, "protocol", "port", "from", "to");
      String[] attrs = new String[4];
      String[] names = {"protocol", "port", "from", "to"};
      for (int k = 0; k < names.length; k++) {
        Object a = rule.get(names[k]);
        if (a != null && !(a instanceof String)) {
          throw UncloudException.invalid(where + ": \"" + names[k] + "\" must be a string"
              + (names[k].equals("port") ? " (\"22\" or \"8000-8080\")" : "") + ", not " + type(a));
        }
        if (a == null && rule.containsKey(names[k])) {
          throw UncloudException.invalid(where + ": \"" + names[k] + "\" must be a string, not null");
        }
        attrs[k] = (String) a;
      }
      rules.allows.add(new FirewallInterface.Allow(attrs[0], attrs[1], attrs[2], attrs[3]));
    }
    return rules;
  }

  /** {@code ipv4} and {@code ipv6} of an object: arrays of strings of the right family. */
  private static FirewallInterface addresses(Map<?, ?> m, String where) {
    FirewallInterface fi = new FirewallInterface();
    for (String family : List.of("ipv4", "ipv6")) {
      Object v = m.get(family);
      if (v == null && !m.containsKey(family)) {
        continue;
      }
      if (!(v instanceof List<?> list)) {
        throw UncloudException.invalid(where + ": \"" + family + "\" must be an array of strings, not " + type(v));
      }
      for (Object a : list) {
        if (!(a instanceof String s)) {
          throw UncloudException.invalid(where + ": \"" + family + "\" must be an array of strings; found " + type(a));
        }
        IpPrefix p;
        try {
          p = IpPrefix.parse(s);
        } catch (UncloudException e) {
          throw UncloudException.invalid(where + ": " + family + ": " + printable(e.getMessage()));
        }
        if (p.v6() != family.equals("ipv6")) {
          throw UncloudException.invalid(where + ": \"" + family + "\" lists " + p + ", an " + (p.v6() ? "IPv6" : "IPv4")
              + " address");
        }
        fi.ips.add(new FirewallInterface.Ip(s));
      }
    }
    return fi;
  }

  private static void only(Map<?, ?> m, String where, String... allowed) {
    for (Object k : m.keySet()) {
      if (!List.of(allowed).contains(k)) {
        throw UncloudException.invalid(where + ": unknown key \"" + printable((String) k) + "\" (known: "
            + String.join(", ", allowed) + ")");
      }
    }
  }

  /** The domain's NIC MACs (only those on a Linux bridge when {@code filterable}), normalised. */
  private static List<String> macs(Domain d, boolean filterable) {
    List<String> out = new ArrayList<>();
    if (d.devices != null) {
      for (Interface n : d.devices.interfaces) {
        boolean ovs = n.virtualport != null && "openvswitch".equals(n.virtualport.type);
        boolean bridged = ("bridge".equals(n.type) || "network".equals(n.type)) && !ovs;
        if (n.mac != null && n.mac.address != null && (bridged || !filterable)) {
          try {
            out.add(Mac.parse(n.mac.address).text());
          } catch (UncloudException e) {
            out.add(n.mac.address); // PolicyBuilder refuses it with its own message
          }
        }
      }
    }
    return out;
  }

  /** A JSON value as Map (keys in order), List, String, Boolean, Number or null. */
  private static Object value(JsonParser p, JsonToken t) throws IOException {
    switch (t) {
      case START_OBJECT -> {
        Map<String, Object> m = new LinkedHashMap<>();
        for (JsonToken k = p.nextToken(); k != JsonToken.END_OBJECT; k = p.nextToken()) {
          String name = p.currentName();
          m.put(name, value(p, p.nextToken()));
        }
        return m;
      }
      case START_ARRAY -> {
        List<Object> l = new ArrayList<>();
        for (JsonToken e = p.nextToken(); e != JsonToken.END_ARRAY; e = p.nextToken()) {
          l.add(value(p, e));
        }
        return l;
      }
      case VALUE_STRING -> {
        return p.getText();
      }
      case VALUE_TRUE, VALUE_FALSE -> {
        return p.getBooleanValue();
      }
      case VALUE_NULL -> {
        return null;
      }
      default -> {
        return p.getNumberValue();
      }
    }
  }

  private static String type(Object v) {
    if (v == null) {
      return "null";
    }
    if (v instanceof Map) {
      return "an object";
    }
    if (v instanceof List) {
      return "an array";
    }
    if (v instanceof String s) {
      return "the string \"" + printable(s.length() > 60 ? s.substring(0, 60) + "..." : s) + "\"";
    }
    return (v instanceof Boolean ? "" : "the number ") + v;
  }

  /** jackson's messages go on with a source excerpt after the first sentence; one line is enough. */
  private static String firstSentence(String m) {
    int cut = m.indexOf(" (start marker at");
    return (cut < 0 ? m : m.substring(0, cut)).lines().findFirst().orElse("");
  }

  private static String name(Domain d) {
    return d.name == null || d.name.isBlank() ? "(unnamed)" : d.name.strip();
  }

  /** One line, no control characters: what a hostile value may put into our error messages. */
  static String printable(String s) {
    StringBuilder b = new StringBuilder();
    for (char c : s.toCharArray()) {
      b.append(c >= 0x20 && c < 0x7f ? String.valueOf(c) : String.format("\\u%04x", (int) c));
    }
    return b.toString();
  }
}
