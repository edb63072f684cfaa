package ch.ungleich.uncloud.tests.lab;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Real TCP connection attempts from a client namespace, every {@code intervalMs} to each target,
 * overlapping (resources lab/tcpprobe.py): each attempt is OK (handshake completed), REFUSED (a RST:
 * the SYN was delivered, nothing listened) or NONE (no answer within the timeout: dropped). Timestamps
 * are epoch ns, comparable with {@link Observer#nowNs()}.
 */
public final class TcpProber implements AutoCloseable {
  /** One attempt: when it started, to which target ({@link #target}), and what came back. */
  public record Attempt(long startNs, String target, String result) {
    /** The SYN reached the host: a handshake or a RST came back. */
    public boolean answered() {
      return !result.equals("NONE");
    }
  }

  private final Process process;
  private final Path out;

  private TcpProber(Process process, Path out) {
    this.process = process;
    this.out = out;
  }

  /** {@code ip:port}, {@code [ipv6]:port}. */
  public static String target(String ip, int port) {
    return (ip.contains(":") ? "[" + ip + "]" : ip) + ":" + port;
  }

  /** Starts probing {@code targets} from {@code netns}; returns once the prober runs. */
  public static TcpProber start(String netns, Path work, String name, int intervalMs, int timeoutMs, List<String> targets) {
    try {
      Path script = work.resolve("tcpprobe.py");
      Files.write(script, GuestImage.resource("tcpprobe.py"));
      Path out = work.resolve(name + ".log");
      Files.deleteIfExists(out);
      List<String> cmd = new ArrayList<>(List.of("/usr/bin/python3", script.toString(), out.toString(),
          String.valueOf(intervalMs), String.valueOf(timeoutMs)));
      cmd.addAll(targets);
      Process p = new ProcessBuilder(Cmd.inNetns(netns, cmd.toArray(String[]::new))).redirectErrorStream(true).start();
      String line = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8)).readLine();
      if (!"READY".equals(line)) {
        p.destroyForcibly();
        throw new IllegalStateException("tcpprobe did not start: " + line);
      }
      return new TcpProber(p, out);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  /** Every finished attempt so far, by start time. */
  public List<Attempt> attempts() {
    List<Attempt> r = new ArrayList<>();
    try {
      for (String l : Files.readAllLines(out)) {
        String[] f = l.split(" ");
        if (f.length == 3 && l.endsWith(f[2]) && f[2].matches("OK|REFUSED|NONE")) {
          r.add(new Attempt(Long.parseLong(f[0]), f[1], f[2]));
        }
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    r.sort(Comparator.comparingLong(Attempt::startNs));
    return r;
  }

  /** The attempts to {@code target} started in [fromNs, toNs]. */
  public List<Attempt> attempts(String target, long fromNs, long toNs) {
    return attempts().stream().filter(a -> a.target().equals(target) && a.startNs() >= fromNs && a.startNs() <= toNs).toList();
  }

  /** One line per target: how many attempts of each result in [fromNs, toNs]. */
  public String summary(long fromNs, long toNs) {
    StringBuilder b = new StringBuilder();
    attempts().stream().filter(a -> a.startNs() >= fromNs && a.startNs() <= toNs).map(Attempt::target).distinct().sorted()
        .forEach(t -> {
          List<Attempt> l = attempts(t, fromNs, toNs);
          b.append(String.format("  %-28s OK %d, REFUSED %d, NONE %d%n", t, count(l, "OK"), count(l, "REFUSED"),
              count(l, "NONE")));
        });
    return b.toString();
  }

  private static long count(List<Attempt> l, String result) {
    return l.stream().filter(a -> a.result().equals(result)).count();
  }

  /** Stops the prober (SIGTERM); attempts still waiting are not written. */
  @Override
  public void close() {
    process.destroy();
    try {
      if (!process.waitFor(5, TimeUnit.SECONDS)) {
        process.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
  }
}
