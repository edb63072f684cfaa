package ch.ungleich.uncloud.hook.nft;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Watches the kernel's ruleset through a child {@code nft -j monitor ruleset} and reports every
 * removal from our table (the table itself, a chain, a rule, a map element; {@code nft flush ruleset}
 * deletes the table): the agent's trigger for a restore. Additions are not reported (a hook call or
 * the agent itself adds; a foreign addition is found by the periodic comparison). One line of JSON
 * per change; the child blocks in netlink while nothing changes.
 */
public final class NftMonitor implements AutoCloseable {
  /** What was removed from our table. */
  public enum Loss {
    /** our whole table (nft flush ruleset, nft delete table) */
    TABLE,
    /** a chain, rule, map element or set of our table */
    PART
  }

  private static final ObjectMapper JSON = new ObjectMapper();

  private final Process process;
  private final Thread reader;

  private NftMonitor(Process process, Thread reader) {
    this.process = process;
    this.reader = reader;
  }

  /**
   * Starts the monitor. {@code onLoss} runs on the reader thread for each removal; {@code onEnd} once
   * when the child ended (killed, nft missing): events may have been missed then.
   */
  public static NftMonitor start(String nft, Consumer<Loss> onLoss, Consumer<String> onEnd) throws IOException {
    return start(nft, NftScript.TABLE, onLoss, onEnd);
  }

  /** {@link #start(String, Consumer, Consumer)} for another table of the bridge family ({@code uncloud_nwfilter}). */
  public static NftMonitor start(String nft, String table, Consumer<Loss> onLoss, Consumer<String> onEnd) throws IOException {
    Process p = new ProcessBuilder(nft, "-j", "monitor", "ruleset").redirectErrorStream(true).start();
    p.getOutputStream().close();
    Thread t = new Thread(() -> {
      String last = "";
      try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
        for (String line; (line = r.readLine()) != null; ) {
          Loss l = classify(line, table);
          if (l != null) {
            onLoss.accept(l);
          } else if (!line.startsWith("{")) {
            last = line;
          }
        }
      } catch (IOException e) {
        last = e.getMessage();
      }
      onEnd.accept(last.isEmpty() ? "nft monitor ended" : "nft monitor ended: " + last.strip());
    }, "nft-monitor");
    t.setDaemon(true);
    t.start();
    return new NftMonitor(p, t);
  }

  /** What one line of {@code nft -j monitor} output removed from our table, or null. */
  public static Loss classify(String line) {
    return classify(line, NftScript.TABLE);
  }

  /** What one line removed from {@code table bridge TABLE}, or null. */
  public static Loss classify(String line, String table) {
    if (!line.startsWith("{") || !line.contains(table)) {
      return null;
    }
    JsonNode n;
    try {
      n = JSON.readTree(line);
    } catch (IOException e) {
      return null;
    }
    for (Iterator<Map.Entry<String, JsonNode>> it = n.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> op = it.next();
      if (!op.getKey().equals("delete") && !op.getKey().equals("flush")) {
        continue;
      }
      for (Iterator<Map.Entry<String, JsonNode>> objs = op.getValue().fields(); objs.hasNext(); ) {
        Map.Entry<String, JsonNode> o = objs.next();
        JsonNode v = o.getValue();
        if (!NftScript.FAMILY.equals(v.path("family").asText())) {
          continue;
        }
        if (o.getKey().equals("table")) {
          if (table.equals(v.path("name").asText())) {
            return op.getKey().equals("delete") ? Loss.TABLE : Loss.PART;
          }
        } else if (table.equals(v.path("table").asText())) {
          return Loss.PART;
        }
      }
    }
    return null;
  }

  public boolean alive() {
    return process.isAlive();
  }

  @Override
  public void close() {
    process.destroy();
    try {
      reader.join(2000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
