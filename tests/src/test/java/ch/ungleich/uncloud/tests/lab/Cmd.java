package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Runs a command to completion and captures its output (the lab's only process edge). */
public final class Cmd {
  private Cmd() {}

  /** Outcome of one command. */
  public record Result(List<String> argv, int rc, String out, String err) {
    public boolean ok() {
      return rc == 0;
    }

    /** Throws with the command, rc and stderr if rc != 0; returns this otherwise. */
    public Result check() {
      if (rc != 0) {
        throw new IllegalStateException(
            "command failed (rc=" + rc + "): " + String.join(" ", argv) + "\n" + err.strip() + "\n" + out.strip());
      }
      return this;
    }
  }

  public static Result run(String... argv) {
    return run(Arrays.asList(argv), null, null, 120);
  }

  public static Result run(List<String> argv) {
    return run(argv, null, null, 120);
  }

  /**
   * Runs argv with optional stdin text and working directory; kills it after timeoutSeconds and
   * reports rc 124 then.
   */
  public static Result run(List<String> argv, String stdin, Path dir, int timeoutSeconds) {
    ProcessBuilder pb = new ProcessBuilder(argv);
    if (dir != null) {
      pb.directory(dir.toFile());
    }
    Map<String, String> env = pb.environment();
    env.put("LC_ALL", "C");
    try {
      Process p = pb.start();
      CompletableFuture<String> out = drain(p.getInputStream());
      CompletableFuture<String> err = drain(p.getErrorStream());
      if (stdin != null) {
        p.getOutputStream().write(stdin.getBytes(StandardCharsets.UTF_8));
      }
      p.getOutputStream().close();
      int rc;
      if (p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
        rc = p.exitValue();
      } else {
        p.destroyForcibly();
        p.waitFor();
        rc = 124;
      }
      return new Result(List.copyOf(argv), rc, out.join(), err.join());
    } catch (IOException e) {
      throw new UncheckedIOException("cannot run " + argv, e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted: " + argv, e);
    }
  }

  /** A thread of its own per stream: the common pool may have a single thread on 2 cores. */
  private static CompletableFuture<String> drain(InputStream in) {
    CompletableFuture<String> f = new CompletableFuture<>();
    Thread t =
        new Thread(
            () -> {
              try (in) {
                f.complete(new String(in.readAllBytes(), StandardCharsets.UTF_8));
              } catch (IOException e) {
                f.complete("");
              }
            },
            "cmd-drain");
    t.setDaemon(true);
    t.start();
    return f;
  }

  /** argv prefixed with `ip netns exec NS`. */
  public static List<String> inNetns(String netns, String... argv) {
    List<String> l = new ArrayList<>(List.of("ip", "netns", "exec", netns));
    l.addAll(Arrays.asList(argv));
    return l;
  }

  /** Runs a shell snippet with sh -c (for short setup sequences). */
  public static Result sh(String script) {
    return run(List.of("sh", "-c", script), null, null, 120);
  }
}
