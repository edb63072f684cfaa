package ch.ungleich.uncloud.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.ungleich.uncloud.tests.lab.Cmd;
import ch.ungleich.uncloud.tests.lab.Observer;
import ch.ungleich.uncloud.tests.lab.TwoHostLab;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

/**
 * {@link AgentSuite} with {@code backend = nft}, plus lost rulesets: {@code nft flush ruleset}, the
 * table, one port chain, one map element deleted; each back within a second (the spoofed probes that
 * got through meanwhile are counted and printed); and the figures.
 */
class AgentNftTest extends AgentSuite {
  @Override
  String backend() {
    return "nft";
  }

  @Override
  String prefix() {
    return "uag";
  }

  @Override
  boolean leftovers(String tap) {
    Cmd.Result t = a.exec("nft", "-j", "list", "table", "bridge", "uncloud");
    if (t.ok() && (t.out().contains("\"port-" + tap + "\"") || t.out().contains("\"" + tap + "\""))) {
      return true;
    }
    Path domain = a.hookStateDir().resolve("domains").resolve(guest.uuid());
    try {
      return Files.exists(a.hookStateDir().resolve("taps").resolve(tap))
          || Files.exists(domain) && Files.readString(domain).contains(tap);
    } catch (IOException e) {
      return true;
    }
  }

  /** Polls nft until the tap's element and chain are back; returns that instant (epoch ns). */
  @Override
  long awaitProtected(String tap, long sinceNs, long timeoutMs) {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (System.currentTimeMillis() < deadline) {
      Cmd.Result r = a.exec("nft", "-j", "list", "map", "bridge", "uncloud", "ports");
      if (r.ok() && r.out().contains("\"" + tap + "\"") && r.out().contains("\"target\": \"port-" + tap + "\"")
          && a.exec("nft", "list", "chain", "bridge", "uncloud", "port-" + tap).ok()) {
        return Observer.nowNs();
      }
      sleepMs(5);
    }
    throw new AssertionError("not restored within " + timeoutMs + " ms; agent log:\n" + agentLog());
  }

  @Test
  @Order(2)
  void lostRulesetsComeBackWithinOneSecond() {
    String tap = tap();
    String[][] losses = {
      {"nft", "flush", "ruleset"},
      {"nft", "delete", "table", "bridge", "uncloud"},
      {"nft", "delete", "chain", "bridge", "uncloud", "port-" + tap},
      {"nft", "delete", "element", "bridge", "uncloud", "ports", "{ \"" + tap + "\" }"},
    };
    for (String[] loss : losses) {
      if (loss[2].equals("chain")) {
        // a chain that is jumped to cannot be deleted alone: drop its map element in the same transaction
        loss = new String[] {"nft", "delete element bridge uncloud ports { \"" + tap + "\" }; delete chain bridge uncloud port-" + tap};
      }
      long t0 = Observer.nowNs();
      a.exec(loss).check();
      long back = awaitProtected(tap, t0, 5_000);
      double ms = (back - t0) / 1e6;
      sleepMs(1000);
      Observer.Summary window = lab.observer().summary(t0, back);
      Observer.Summary after = lab.observer().summary(back + 50_000_000L, Observer.nowNs());
      report("%s: protection back after %.0f ms; spoofed probes through in that window: %d%n%s", String.join(" ", loss), ms,
          window.spoofed(), window);
      assertTrue(ms <= 1000, String.join(" ", loss) + ": back within 1 s, was " + ms + " ms");
      assertEquals(0, after.spoofed(), "after the restore zero spoofed:\n" + after);
      assertTrue(after.count("legit4") > 10, "legit passes after the restore:\n" + after);
    }
    agentLog().lines().filter(l -> l.contains(" deleted: ")).forEach(l -> report("agent: %s", l));
  }

  /**
   * The figures ({@code tests/bench/agent} runs this with {@code -Duncloud.agent.trials=20}): flush →
   * restored, metadata → applied (an address removed: its last probe; added: its first), attach →
   * rules, as median and worst of the trials; the agent's RSS and CPU while idle. Each trial must
   * be within 1 s.
   */
  @Test
  @Order(6)
  void figures() throws IOException {
    int trials = Integer.getInteger("uncloud.agent.trials", 3);
    String tap = tap();
    List<Double> flush = new ArrayList<>();
    List<Integer> through = new ArrayList<>();
    List<Double> outage = new ArrayList<>();
    for (int i = 0; i < trials; i++) {
      long t0 = Observer.nowNs();
      a.exec("nft", "flush", "ruleset").check();
      long back = awaitProtected(tap, t0, 5_000);
      flush.add((back - t0) / 1e6);
      sleepMs(300);
      through.add(lab.observer().summary(t0, back).spoofed());
      outage.add(longestGap("legit4", t0 - 100_000_000L, back + 300_000_000L) / 1e6);
      // at most 5 table deletions per 10 s: more and the agent backs off on purpose (FightGuard)
      sleepMs(Math.max(0, 2200 - (Observer.nowNs() - t0) / 1_000_000));
    }
    String full = guest.firewallMetadata().replace("uc:", "").replace(" xmlns:uc=\"" + NS_URI + "\"", "");
    String noV6 = full.replaceAll("\\s*<ip address=\"" + guest.ip6Address() + "\"/>", "");
    List<Double> removed = new ArrayList<>();
    List<Double> added = new ArrayList<>();
    for (int i = 0; i < trials; i++) {
      a.virsh("metadata", guest.name(), "--uri", NS_URI, "--key", "uc", "--live", "--set", noV6).check();
      long set = Observer.nowNs();
      sleepMs(1200);
      removed.add((lastFrame("legit6", set - 1_000_000_000L, Observer.nowNs()) - set) / 1e6);
      a.virsh("metadata", guest.name(), "--uri", NS_URI, "--key", "uc", "--live", "--set", full).check();
      long set1 = Observer.nowNs();
      lab.observer().awaitMoreThan(0, set1, 5_000, "legit6");
      added.add((firstFrame("legit6", set1, Observer.nowNs()) - set1) / 1e6);
    }
    List<Double> attach = new ArrayList<>();
    for (int i = 0; i < trials; i++) {
      a.virsh("attach-interface", guest.name(), "bridge", TwoHostLab.BRIDGE, "--mac", MAC2, "--model", "virtio", "--live").check();
      long attached = Observer.nowNs();
      String tap2 = tapOf(MAC2);
      attach.add((awaitProtected(tap2, attached, 5_000) - attached) / 1e6);
      a.virsh("detach-interface", guest.name(), "bridge", "--mac", MAC2, "--live").check();
      long deadline = System.currentTimeMillis() + 30_000;
      while (a.virsh("domiflist", guest.name()).out().contains(MAC2) && System.currentTimeMillis() < deadline) {
        sleepMs(50);
      }
    }
    long pid = agent.pid();
    long[] c0 = cpuTicks(pid);
    long w0 = System.nanoTime();
    sleepMs(10_000);
    long[] c1 = cpuTicks(pid);
    // a clock tick is 10 ms (USER_HZ 100)
    double cpuPct = (c1[0] - c0[0]) * 10.0 / ((System.nanoTime() - w0) / 1e6) * 100;
    report("FIGURES %d trials (median / worst, ms): flush ruleset -> restored %s; spoofed probes through per flush %s;"
        + " longest gap in the legit IPv4 probes around a flush (every 20 ms; the fail-closed transaction drops them"
        + " until the second is in) %s; metadata: removed address stops %s, added address passes %s; attach -> rules %s",
        trials, mw(flush), through, mw(outage), mw(removed), mw(added), mw(attach));
    report("FIGURES agent idle: %.2f %% CPU over 10 s, RSS %d KiB (1 domain)", cpuPct, c1[1]);
    for (List<Double> xs : List.of(flush, removed, added, attach)) {
      assertTrue(xs.stream().allMatch(x -> x <= 1000), "every trial within 1 s: " + xs);
    }
  }

  /**
   * Something that keeps deleting our table (8 times, each right after the restore): from the 6th
   * deletion within 10 s the agent waits before restoring (1 s, then 2 s, ...), says so loudly, and
   * doctor shows it; in the end the rules are back.
   */
  @Test
  @Order(7)
  void aToolThatKeepsDeletingOurTableIsNotFoughtForever() {
    String tap = tap();
    sleepMs(10_000); // a fresh window for the fight guard
    List<Double> restores = new ArrayList<>();
    for (int i = 0; i < 8; i++) {
      long t0 = Observer.nowNs();
      a.exec("nft", "delete", "table", "bridge", "uncloud").check();
      restores.add((awaitProtected(tap, t0, 20_000) - t0) / 1e6);
    }
    report("table deleted 8 times in a row, restored after (ms): %s", restores);
    // the 6th deletion is held unless the restore it triggers began before the monitor's table line
    // arrived (the line ends its burst); from the 7th on every restore waits
    assertTrue(restores.subList(0, 5).stream().allMatch(x -> x <= 1000), "the first five at once: " + restores);
    assertTrue(restores.get(6) >= 900 && restores.get(7) >= 1900, "then 1 s, 2 s ...: " + restores);
    awaitLog("something keeps deleting table bridge uncloud", 0, 5_000);
    assertTrue(agentJson().contains("something keeps deleting"), agentJson());
    Cmd.Result d = cli("doctor");
    String line = d.out().lines().filter(l -> l.matches("\\S+\\s+agent\\s.*")).findFirst().orElse("(none)");
    report("doctor: %s", line);
    assertTrue(line.startsWith("WARN") && line.contains("keeps deleting"), d.out());
  }

  /** The longest time between two consecutive frames of {@code kind} seen from {@code fromNs} to {@code toNs}. */
  long longestGap(String kind, long fromNs, long toNs) {
    List<Long> ts = new ArrayList<>();
    for (Observer.Frame f : lab.observer().frames()) {
      if (kind.equals(f.kind()) && f.tsNs() >= fromNs && f.tsNs() <= toNs) {
        ts.add(f.tsNs());
      }
    }
    ts.sort(null);
    long gap = 0;
    for (int i = 1; i < ts.size(); i++) {
      gap = Math.max(gap, ts.get(i) - ts.get(i - 1));
    }
    return gap;
  }

  static String mw(List<Double> xs) {
    List<Double> s = xs.stream().sorted().toList();
    double med = s.size() % 2 == 1 ? s.get(s.size() / 2) : (s.get(s.size() / 2 - 1) + s.get(s.size() / 2)) / 2;
    return String.format("%.0f / %.0f", med, s.get(s.size() - 1));
  }

  /** utime+stime in clock ticks (USER_HZ = 100) and VmRSS in KiB of a process. */
  static long[] cpuTicks(long pid) throws IOException {
    String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
    String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
    long ticks = Long.parseLong(f[11]) + Long.parseLong(f[12]);
    long rss = Files.readAllLines(Path.of("/proc/" + pid + "/status")).stream().filter(l -> l.startsWith("VmRSS:"))
        .map(l -> Long.parseLong(l.replaceAll("[^0-9]", ""))).findFirst().orElse(-1L);
    return new long[] {ticks, rss};
  }
}
