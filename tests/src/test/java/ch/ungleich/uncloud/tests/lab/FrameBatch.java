package ch.ungleich.uncloud.tests.lab;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A batch of named frames, each sent once from a lab port, and which of them reached the
 * observer. One capture process and one request to the scapy server per batch, however many
 * frames and ports.
 *
 * <p>Every frame is a scapy expression evaluated by frames.py with the sender's variables in scope
 * (see {@link Guest#vars()}), plus a unique trailer so that no two frames have the same bytes. The
 * batch ends with an end frame from the injector port; the capture must see it, otherwise the lab
 * is broken and {@link #run()} throws instead of reporting every frame as dropped.
 */
public final class FrameBatch {
  /** One frame as sent and its fate. */
  public record Outcome(String name, String from, String expr, String hex, Verdict verdict) {
    public String describe() {
      return name + " from " + from + ": " + verdict + "\n  scapy: " + expr + "\n  bytes: " + hex;
    }
  }

  private record Sent(String name, NetnsLab.Port from, String expr, Map<String, String> vars) {}

  private final FrameTool tool;
  private final NetnsLab lab;
  private final List<Sent> frames = new ArrayList<>();

  FrameBatch(FrameTool tool, NetnsLab lab) {
    this.tool = tool;
    this.lab = lab;
  }

  /** Adds a frame; names must be unique in the batch. */
  public FrameBatch add(String name, NetnsLab.Port from, Map<String, String> vars, String expr) {
    if (frames.stream().anyMatch(f -> f.name().equals(name))) {
      throw new IllegalArgumentException("duplicate frame name " + name);
    }
    frames.add(new Sent(name, from, expr, vars));
    return this;
  }

  public FrameBatch add(String name, NetnsLab.Port from, Guest g, String expr) {
    return add(name, from, g.vars(), expr);
  }

  /** Sends all frames (grouped per port, in order) and returns the outcome per name. */
  public Map<String, Outcome> run() {
    byte[] n = new byte[8];
    new SecureRandom().nextBytes(n);
    String nonce = HexFormat.of().formatHex(n);

    ObjectNode req = FrameTool.JSON.createObjectNode();
    req.put("nonce", nonce);
    ArrayNode ports = req.putArray("ports");
    // one entry per consecutive run of frames from the same port with the same variables
    ObjectNode cur = null;
    Sent prev = null;
    for (Sent f : frames) {
      if (prev == null || !prev.from().equals(f.from()) || !prev.vars().equals(f.vars())) {
        cur = ports.addObject();
        cur.put("netns", f.from().netns());
        cur.put("iface", f.from().iface());
        ObjectNode vars = cur.putObject("vars");
        f.vars().forEach(vars::put);
        cur.putArray("frames");
      }
      ObjectNode fr = ((ArrayNode) cur.get("frames")).addObject();
      fr.put("name", f.name());
      fr.put("expr", f.expr());
      prev = f;
    }
    ObjectNode end = req.putObject("end");
    end.put("netns", lab.injector().netns());
    end.put("iface", lab.injector().iface());
    end.put("mac", lab.injector().mac());

    long t0 = System.nanoTime();
    FrameTool.Capture.Result cap;
    JsonNode answer;
    try (FrameTool.Capture c = tool.capture(lab, nonce)) {
      answer = tool.request(req);
      cap = c.await();
    }
    if (!"END".equals(cap.status())) {
      throw new IllegalStateException("the observer never saw the batch's end frame (status "
          + cap.status() + "): the lab does not forward frames, so no verdict means anything. "
          + cap.stderr());
    }
    Map<String, Integer> seen = new HashMap<>();
    for (String h : cap.frames()) {
      seen.merge(h, 1, Integer::sum);
    }
    java.util.Set<String> sentHex = new java.util.HashSet<>();
    answer.get("sent").forEach(s -> sentHex.add(s.get("hex").asText()));
    for (String h : seen.keySet()) {
      if (!sentHex.contains(h)) { // would make a delivered frame look dropped
        throw new IllegalStateException("a frame of this batch arrived altered: " + h);
      }
    }
    Map<String, Sent> byName = new HashMap<>();
    frames.forEach(f -> byName.put(f.name(), f));
    Map<String, Outcome> result = new LinkedHashMap<>();
    for (JsonNode s : answer.get("sent")) {
      String name = s.get("name").asText();
      String hex = s.get("hex").asText();
      Sent f = byName.get(name);
      int count = seen.getOrDefault(hex, 0);
      if (count > 1) {
        throw new IllegalStateException(name + " arrived " + count + " times (a bridge loop?)");
      }
      result.put(name, new Outcome(name, f.from().bridgePort(), f.expr(), hex,
          count == 1 ? Verdict.DELIVERED : Verdict.DROPPED));
    }
    if (result.size() != frames.size()) {
      throw new IllegalStateException("frames.py sent " + result.size() + " of " + frames.size());
    }
    System.err.printf("frame batch: %d frames from %d ports, %d delivered, %d ms%n",
        result.size(), ports.size(),
        result.values().stream().filter(o -> o.verdict() == Verdict.DELIVERED).count(),
        (System.nanoTime() - t0) / 1_000_000);
    return result;
  }
}
