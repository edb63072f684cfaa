package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * Records every frame reaching one interface of a namespace (resource lab/observer.py, raw
 * AF_PACKET socket, kernel receive timestamps) and summarises the guest's probes.
 */
public final class Observer implements AutoCloseable {

  /** One received frame; kind "-" and seq -1 for frames that are not probes. */
  public record Frame(long tsNs, String kind, long seq, String srcMac, int etherType, int len, String info) {
    public boolean probe() {
      return !kind.equals("-");
    }
  }

  /** Per probe kind: how many, first/last seq, seqs missing in between, largest gap in ms. */
  public record KindStats(String kind, int count, long firstSeq, long lastSeq, long missing, double maxGapMs) {}

  /**
   * Summary of a time window.
   *
   * @param maxLegitGapMs largest receive-time gap between consecutive probes of one legit kind,
   *     over all legit kinds (window edges count: a window with no legit probe at all gives its
   *     full length)
   */
  public record Summary(long fromNs, long toNs, Map<String, KindStats> kinds, double maxLegitGapMs, int otherFrames) {
    public int count(String kind) {
      KindStats k = kinds.get(kind);
      return k == null ? 0 : k.count();
    }

    public int spoofed() {
      return LabGuest.SPOOFED.stream().mapToInt(this::count).sum();
    }

    @Override
    public String toString() {
      StringBuilder sb = new StringBuilder();
      sb.append(String.format("window %.3f s, largest legit gap %.1f ms, %d non-probe frames%n",
          (toNs - fromNs) / 1e9, maxLegitGapMs, otherFrames));
      for (KindStats k : kinds.values()) {
        sb.append(String.format("  %-10s count %5d  seq %d..%d  missing %d  max gap %.1f ms%n",
            k.kind(), k.count(), k.firstSeq(), k.lastSeq(), k.missing(), k.maxGapMs()));
      }
      return sb.toString();
    }
  }

  private final Process process;
  private final Path out;

  private Observer(Process process, Path out) {
    this.process = process;
    this.out = out;
  }

  /** Starts the observer on IFNAME in NETNS, writing to OUT; returns once it captures. */
  public static Observer start(String netns, String ifname, Path out, Path work) {
    try {
      Path script = work.resolve("observer.py");
      Files.write(script, GuestImage.resource("observer.py"));
      ProcessBuilder pb = new ProcessBuilder(Cmd.inNetns(netns, "/usr/bin/python3", script.toString(), ifname, out.toString()));
      pb.redirectErrorStream(true);
      pb.redirectOutput(ProcessBuilder.Redirect.appendTo(work.resolve("observer.stderr").toFile()));
      Observer o = new Observer(pb.start(), out);
      long deadline = System.currentTimeMillis() + 10_000;
      while (!(Files.exists(out) && Files.readString(out).startsWith("READY"))) {
        if (!o.process.isAlive() || System.currentTimeMillis() > deadline) {
          o.close();
          throw new IllegalStateException("observer did not start: " + LibvirtHost.tail(work.resolve("observer.stderr")));
        }
        LibvirtHost.sleep(50);
      }
      return o;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public long pid() {
    return process.pid();
  }

  /** Wall clock in ns, comparable with frame timestamps. */
  public static long nowNs() {
    Instant i = Instant.now();
    return i.getEpochSecond() * 1_000_000_000L + i.getNano();
  }

  /** All frames recorded so far. */
  public List<Frame> frames() {
    List<Frame> r = new ArrayList<>();
    try {
      for (String l : Files.readAllLines(out)) {
        String[] f = l.split(" ");
        if (f.length < 7) {
          continue; // READY, or a line being written
        }
        r.add(new Frame(Long.parseLong(f[0]), f[1], Long.parseLong(f[2]), f[3], Integer.parseInt(f[4], 16),
            Integer.parseInt(f[5]), f[6]));
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return r;
  }

  /** Summary of frames received in [fromNs, toNs] (toNs at most now). */
  public Summary summary(long fromNs, long toNs) {
    return summarize(frames(), fromNs, Math.min(toNs, nowNs()));
  }

  static Summary summarize(Collection<Frame> all, long fromNs, long toNs) {
    Map<String, List<Frame>> byKind = new TreeMap<>();
    int other = 0;
    for (Frame f : all) {
      if (f.tsNs() < fromNs || f.tsNs() > toNs) {
        continue;
      }
      if (f.probe()) {
        byKind.computeIfAbsent(f.kind(), k -> new ArrayList<>()).add(f);
      } else {
        other++;
      }
    }
    Map<String, KindStats> stats = new TreeMap<>();
    double maxLegit = 0;
    for (String legit : LabGuest.LEGIT) {
      if (!byKind.containsKey(legit)) {
        maxLegit = Math.max(maxLegit, (toNs - fromNs) / 1e6);
      }
    }
    for (var e : byKind.entrySet()) {
      List<Frame> l = e.getValue();
      long first = l.get(0).seq();
      long last = l.get(l.size() - 1).seq();
      long distinct = l.stream().mapToLong(Frame::seq).distinct().count();
      double gap = 0;
      for (int i = 1; i < l.size(); i++) {
        gap = Math.max(gap, (l.get(i).tsNs() - l.get(i - 1).tsNs()) / 1e6);
      }
      stats.put(e.getKey(), new KindStats(e.getKey(), l.size(), first, last, Math.max(0, last - first + 1 - distinct), gap));
      if (LabGuest.LEGIT.contains(e.getKey())) {
        // edges: from the window start to the first probe, from the last probe to the window end
        gap = Math.max(gap, (l.get(0).tsNs() - fromNs) / 1e6);
        gap = Math.max(gap, (toNs - l.get(l.size() - 1).tsNs()) / 1e6);
        maxLegit = Math.max(maxLegit, gap);
      }
    }
    return new Summary(fromNs, toNs, stats, maxLegit, other);
  }

  /** Frames received in [fromNs, toNs] that {@code which} accepts, in receive order. */
  public List<Frame> frames(long fromNs, long toNs, Predicate<Frame> which) {
    return frames().stream().filter(f -> f.tsNs() >= fromNs && f.tsNs() <= toNs && which.test(f)).toList();
  }

  /**
   * Largest receive-time gap in ms between consecutive frames {@code which} accepts in [fromNs, toNs]
   * (window edges do not count, as for {@link KindStats#maxGapMs}); the window's length when fewer
   * than two arrived.
   */
  public double maxGapMs(long fromNs, long toNs, Predicate<Frame> which) {
    List<Frame> l = frames(fromNs, toNs, which);
    if (l.size() < 2) {
      return (toNs - fromNs) / 1e6;
    }
    double gap = 0;
    for (int i = 1; i < l.size(); i++) {
      gap = Math.max(gap, (l.get(i).tsNs() - l.get(i - 1).tsNs()) / 1e6);
    }
    return gap;
  }

  /**
   * qemu's announce-self frame from {@code mac} (qemu net/announce.c): RARP request reverse, the
   * NIC's MAC as sender and target hardware address, 0.0.0.0 both (observer.py's info field).
   */
  public static Predicate<Frame> announceFrom(String mac) {
    String info = "rarp_op3_" + mac + "/0.0.0.0>" + mac + "/0.0.0.0";
    return f -> f.etherType() == 0x8035 && f.srcMac().equals(mac) && f.info().equals(info);
  }

  /** An ICMP echo reply from {@code ip4} to {@code to} (the answer to {@link #ping}). */
  public static Predicate<Frame> echoReply(String ip4, String to) {
    String info = "ip4_" + ip4 + ">" + to + "_p1_icmp4-0";
    return f -> f.etherType() == 0x0800 && f.info().equals(info);
  }

  /** A running pinger.py; {@link #close} stops it (SIGTERM, by PID). */
  public static final class Pinger implements AutoCloseable {
    private final Process process;

    private Pinger(Process process) {
      this.process = process;
    }

    public long pid() {
      return process.pid();
    }

    @Override
    public void close() {
      stop(process);
    }
  }

  /**
   * Pings {@code ip4} from {@code netns} every {@code intervalMs} until closed (resource
   * lab/pinger.py; its output goes to {@code work}/pinger.stderr); the answers are frames like any
   * other, see {@link #echoReply}.
   */
  public static Pinger ping(String netns, String ip4, int intervalMs, Path work) {
    try {
      Path script = work.resolve("pinger.py");
      Files.write(script, GuestImage.resource("pinger.py"));
      ProcessBuilder pb = new ProcessBuilder(Cmd.inNetns(netns, "/usr/bin/python3", script.toString(), ip4,
          Integer.toString(intervalMs)));
      pb.redirectErrorStream(true);
      pb.redirectOutput(ProcessBuilder.Redirect.appendTo(work.resolve("pinger.stderr").toFile()));
      return new Pinger(pb.start());
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /**
   * Waits until every given kind was seen after sinceNs; returns the summary since then.
   *
   * @throws IllegalStateException after timeoutMs, with what was seen
   */
  public Summary awaitKinds(Collection<String> kinds, long sinceNs, long timeoutMs) {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (true) {
      Summary s = summary(sinceNs, Long.MAX_VALUE);
      if (kinds.stream().allMatch(k -> s.count(k) > 0)) {
        return s;
      }
      if (System.currentTimeMillis() > deadline) {
        throw new IllegalStateException("observer did not see " + kinds + " within " + timeoutMs + " ms; saw " + s.kinds().keySet());
      }
      LibvirtHost.sleep(100);
    }
  }

  /**
   * Waits (at most timeoutMs) until more than {@code min} probes of each kind arrived after sinceNs, and
   * returns quietly either way: on a loaded machine the TCG guest and the observer lag behind, and the
   * caller's assertions say what is missing.
   */
  public void awaitMoreThan(int min, long sinceNs, long timeoutMs, String... kinds) {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (System.currentTimeMillis() < deadline) {
      Summary s = summary(sinceNs, Long.MAX_VALUE);
      if (java.util.Arrays.stream(kinds).allMatch(k -> s.count(k) > min)) {
        return;
      }
      LibvirtHost.sleep(250);
    }
  }

  /** Stops the observer (SIGTERM, by PID); its file stays readable. */
  @Override
  public void close() {
    stop(process);
  }

  /** SIGTERM, then SIGKILL after 5 s; waits until the process is gone. */
  static void stop(Process p) {
    if (p.isAlive()) {
      p.destroy();
      try {
        if (!p.waitFor(5, TimeUnit.SECONDS)) {
          p.destroyForcibly();
          p.waitFor();
        }
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }
}
