package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * The TCP side of a lab guest started {@link LabGuest#withTcp withTcp} (resource lab/tcppeer.py, in
 * a namespace on the segment): the far end of the connection the guest opens itself, and a client
 * that connects to the guest's services again and again. Everything it sees is read back from its
 * log; timestamps are epoch ns, comparable with {@link Observer#nowNs}.
 */
public final class TcpPeer implements AutoCloseable {

  /** A line the guest sent on its connection {@code conn}: its seq, and the highest seq the guest had answered. */
  public record Line(long tsNs, int conn, long seq, long echoed) {}

  /** One connection attempt to a guest service: started at startNs, ended at tsNs with ok/timeout/refused/error. */
  public record Attempt(long tsNs, int port, String result, long startNs) {
    public boolean ok() {
      return result.equals("ok");
    }
  }

  private final Process process;
  private final Path log;

  private TcpPeer(Process process, Path log) {
    this.process = process;
    this.log = log;
  }

  /**
   * Starts the peer in netns: listening on listen:listenPort for the guest's connection, and
   * connecting to each guest port of {@code everyMs} (port -> interval) at that interval.
   */
  public static TcpPeer start(String netns, String listen, int listenPort, String guest, Map<Integer, Integer> everyMs,
      Path work) {
    try {
      Path script = work.resolve("tcppeer.py");
      Files.write(script, GuestImage.resource("tcppeer.py"));
      Path log = work.resolve("tcppeer.log");
      String plan = String.join(",", everyMs.entrySet().stream().map(e -> e.getKey() + ":" + e.getValue()).toList());
      ProcessBuilder pb = new ProcessBuilder(Cmd.inNetns(netns, "/usr/bin/python3", script.toString(), listen,
          Integer.toString(listenPort), guest, plan, log.toString()));
      pb.redirectErrorStream(true);
      pb.redirectOutput(ProcessBuilder.Redirect.appendTo(work.resolve("tcppeer.stderr").toFile()));
      TcpPeer p = new TcpPeer(pb.start(), log);
      long deadline = System.currentTimeMillis() + 10_000;
      while (!(Files.exists(log) && Files.readString(log).startsWith("READY"))) {
        if (!p.process.isAlive() || System.currentTimeMillis() > deadline) {
          p.close();
          throw new IllegalStateException("tcppeer.py did not start: " + LibvirtHost.tail(work.resolve("tcppeer.stderr")));
        }
        LibvirtHost.sleep(50);
      }
      return p;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  private List<String[]> events() {
    try {
      List<String[]> r = new ArrayList<>();
      for (String l : Files.readAllLines(log, StandardCharsets.US_ASCII)) {
        String[] f = l.split(" ");
        if (f.length >= 3 && f[0].matches("[0-9]+")) {
          r.add(f);
        }
      }
      return r;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Lines the guest sent, received in [fromNs, toNs]. */
  public List<Line> lines(long fromNs, long toNs) {
    return events().stream().filter(f -> f[1].equals("L")).map(f -> new Line(Long.parseLong(f[0]),
        Integer.parseInt(f[2]), Long.parseLong(f[3]), Long.parseLong(f[4])))
        .filter(l -> l.tsNs() >= fromNs && l.tsNs() <= toNs).toList();
  }

  /** Connections the guest opened, in order: "n addr:port" at accept, " closed: why" appended once closed. */
  public List<String> connections() {
    List<String> r = new ArrayList<>();
    for (String[] f : events()) {
      if (f[1].equals("A")) {
        r.add(f[2] + " " + f[3]);
      } else if (f[1].equals("X")) {
        int n = Integer.parseInt(f[2]);
        r.set(n - 1, r.get(n - 1) + " closed: " + String.join(" ", List.of(f).subList(3, f.length)));
      }
    }
    return r;
  }

  /** Service attempts started in [fromNs, toNs] (and finished: each ends within 0.8 s). */
  public List<Attempt> attempts(int port, long fromNs, long toNs) {
    return events().stream().filter(f -> f[1].equals("S") && Integer.parseInt(f[2]) == port)
        .map(f -> new Attempt(Long.parseLong(f[0]), port, f[3], Long.parseLong(f[4])))
        .filter(a -> a.startNs() >= fromNs && a.startNs() <= toNs).toList();
  }

  /**
   * The service's outage in [fromNs, toNs]: the largest gap between the starts of two consecutive
   * successful attempts (the window's edges count, so no success at all gives the window's length).
   */
  public double serviceGapMs(int port, long fromNs, long toNs) {
    long prev = fromNs;
    long gap = 0;
    for (Attempt a : attempts(port, fromNs, toNs)) {
      if (a.ok()) {
        gap = Math.max(gap, a.startNs() - prev);
        prev = a.startNs();
      }
    }
    return Math.max(gap, toNs - prev) / 1e6;
  }

  /** Largest gap between two lines received on connection conn in [fromNs, toNs] (edges count). */
  public double lineGapMs(int conn, long fromNs, long toNs) {
    long prev = fromNs;
    long gap = 0;
    for (Line l : lines(fromNs, toNs)) {
      if (l.conn() == conn) {
        gap = Math.max(gap, l.tsNs() - prev);
        prev = l.tsNs();
      }
    }
    return Math.max(gap, toNs - prev) / 1e6;
  }

  /**
   * The first round trip on connection conn completed after sinceNs: the first line received after
   * sinceNs whose echoed field covers a line that was itself received after sinceNs (so one line
   * went guest -> peer and its answer peer -> guest, both after sinceNs). Null if none yet.
   */
  public Line roundTripAfter(int conn, long sinceNs) {
    Long firstSeq = null;
    for (Line l : lines(sinceNs, Long.MAX_VALUE)) {
      if (l.conn() != conn) {
        continue;
      }
      if (firstSeq == null) {
        firstSeq = l.seq();
      } else if (l.echoed() >= firstSeq) {
        return l;
      }
    }
    return null;
  }

  /** Waits (at most timeoutMs) for {@link #roundTripAfter}; throws with the connection's lines if none. */
  public Line awaitRoundTrip(int conn, long sinceNs, long timeoutMs) {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (true) {
      Line l = roundTripAfter(conn, sinceNs);
      if (l != null) {
        return l;
      }
      if (System.currentTimeMillis() > deadline) {
        List<Line> seen = lines(sinceNs, Long.MAX_VALUE);
        throw new AssertionError("no round trip on the guest's connection " + conn + " within " + timeoutMs
            + " ms; connections " + connections() + ", lines since: " + seen.subList(0, Math.min(20, seen.size())));
      }
      LibvirtHost.sleep(50);
    }
  }

  /** Asks the guest to close its connection and open a new one (it answers "UCR1" so). */
  public void reconnect() {
    try {
      OutputStream o = process.getOutputStream();
      o.write("reconnect\n".getBytes(StandardCharsets.US_ASCII));
      o.flush();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Waits (at most timeoutMs) until the guest opened its n-th connection. */
  public void awaitConnections(int n, long timeoutMs) {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (connections().size() < n) {
      if (System.currentTimeMillis() > deadline) {
        throw new AssertionError("the guest did not open connection " + n + " within " + timeoutMs + " ms: " + connections());
      }
      LibvirtHost.sleep(50);
    }
  }

  public long pid() {
    return process.pid();
  }

  @Override
  public void close() {
    Observer.stop(process);
  }
}
