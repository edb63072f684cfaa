package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

/** Runs a command to completion with a hard timeout; never leaves the process behind. */
public final class Proc {
  private Proc() {}

  /** Outcome of one command. */
  public record Result(List<String> cmd, int exit, String out, String err) {
    /** Throws with the full command, exit code and both streams unless exit is 0. */
    public Result ok() {
      if (exit != 0) {
        throw new IllegalStateException("command failed: " + describe());
      }
      return this;
    }

    public String describe() {
      return String.join(" ", cmd) + " -> exit " + exit
          + (out.isBlank() ? "" : "\n--- stdout\n" + out.strip())
          + (err.isBlank() ? "" : "\n--- stderr\n" + err.strip());
    }
  }

  public static Result run(Duration timeout, String stdin, List<String> cmd) {
    ProcessBuilder pb = new ProcessBuilder(cmd);
    Process p;
    try {
      p = pb.start();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot start " + cmd, e);
    }
    try {
      CompletableFuture<String> out = drain(p.getInputStream());
      CompletableFuture<String> err = drain(p.getErrorStream());
      try (OutputStream in = p.getOutputStream()) {
        if (stdin != null) {
          in.write(stdin.getBytes(StandardCharsets.UTF_8));
        }
      } catch (IOException e) {
        // the command may exit without reading stdin; its exit code tells the story
      }
      if (!p.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) {
        p.descendants().forEach(ProcessHandle::destroyForcibly);
        p.destroyForcibly();
        p.waitFor(5, TimeUnit.SECONDS);
        throw new IllegalStateException("timed out after " + timeout + ": " + String.join(" ", cmd));
      }
      return new Result(List.copyOf(cmd), p.exitValue(), out.get(), err.get());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      p.destroyForcibly();
      throw new IllegalStateException("interrupted: " + cmd, e);
    } catch (ExecutionException e) {
      throw new IllegalStateException("reading output of " + cmd, e);
    }
  }

  public static Result run(String... cmd) {
    return run(Duration.ofSeconds(30), null, List.of(cmd));
  }

  static CompletableFuture<String> drain(InputStream s) {
    return CompletableFuture.supplyAsync(() -> {
      try (s) {
        return new String(s.readAllBytes(), StandardCharsets.UTF_8);
      } catch (IOException e) {
        return "";
      }
    });
  }
}
