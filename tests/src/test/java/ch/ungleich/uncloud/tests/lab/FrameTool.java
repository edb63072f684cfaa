package ch.ungleich.uncloud.tests.lab;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.io.Writer;
import java.io.OutputStreamWriter;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The long-lived {@code frames.py serve} process (scapy is imported once per test class), plus the
 * short-lived capture processes. One instance per test class; {@link #close()} in {@code @AfterAll}.
 */
public final class FrameTool implements AutoCloseable {
  public static final String PYTHON = "/usr/bin/python3"; // Debian's, with python3-scapy
  static final ObjectMapper JSON = new ObjectMapper();

  private final Process server;
  private final BufferedReader out;
  private final Writer in;
  private final CompletableFuture<String> err;

  private FrameTool(Process server) {
    this.server = server;
    this.out = new BufferedReader(
        new InputStreamReader(server.getInputStream(), StandardCharsets.UTF_8));
    this.in = new OutputStreamWriter(server.getOutputStream(), StandardCharsets.UTF_8);
    this.err = Proc.drain(server.getErrorStream());
  }

  /** Path of lab/frames.py on the test classpath. */
  public static Path script() {
    URL u = FrameTool.class.getResource("/lab/frames.py");
    if (u == null) {
      throw new IllegalStateException("lab/frames.py not on the test classpath");
    }
    try {
      return Path.of(u.toURI());
    } catch (URISyntaxException e) {
      throw new IllegalStateException(e);
    }
  }

  public static FrameTool start() {
    Process p;
    try {
      ProcessBuilder pb = new ProcessBuilder(PYTHON, script().toString(), "serve");
      pb.environment().put("UNCLOUD_LAB_PREFIX", NetnsLab.PREFIX);
      p = pb.start();
    } catch (IOException e) {
      throw new UncheckedIOException("cannot start " + PYTHON + " frames.py serve", e);
    }
    FrameTool t = new FrameTool(p);
    try {
      JsonNode hello = t.readAnswer(60);
      if (!hello.path("ready").asBoolean()) {
        throw new IllegalStateException("frames.py serve said " + hello);
      }
      return t;
    } catch (RuntimeException e) {
      t.close();
      throw e;
    }
  }

  public FrameBatch batch(NetnsLab lab) {
    return new FrameBatch(this, lab);
  }

  /** Sends one request line, returns the answer; throws on {@code {"error": ...}}. */
  synchronized JsonNode request(JsonNode req) {
    try {
      in.write(JSON.writeValueAsString(req));
      in.write('\n');
      in.flush();
    } catch (IOException e) {
      throw new UncheckedIOException("frames.py serve is gone: " + stderr(), e);
    }
    JsonNode a = readAnswer(60);
    if (a.has("error")) {
      throw new IllegalStateException("frames.py: " + a.get("error").asText());
    }
    return a;
  }

  private JsonNode readAnswer(int seconds) {
    CompletableFuture<String> line = CompletableFuture.supplyAsync(() -> {
      try {
        return out.readLine();
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    });
    try {
      String l = line.get(seconds, TimeUnit.SECONDS);
      if (l == null) {
        throw new IllegalStateException("frames.py serve exited: " + stderr());
      }
      return JSON.readTree(l);
    } catch (TimeoutException e) {
      server.destroyForcibly();
      throw new IllegalStateException("frames.py serve: no answer in " + seconds + " s");
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    } catch (ExecutionException | IOException e) {
      throw new IllegalStateException("frames.py serve: " + e + " " + stderr(), e);
    }
  }

  private String stderr() {
    if (server.isAlive()) {
      return "";
    }
    try {
      return err.get(1, TimeUnit.SECONDS);
    } catch (Exception e) {
      return "";
    }
  }

  /** Starts {@code frames.py capture} on the observer and waits for READY. */
  Capture capture(NetnsLab lab, String nonce) {
    NetnsLab.Port o = lab.observer();
    List<String> cmd = List.of("ip", "netns", "exec", o.netns(), PYTHON, script().toString(),
        "capture", o.iface(), nonce, "20");
    Process p;
    try {
      p = new ProcessBuilder(cmd).start();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    Capture c = new Capture(p);
    c.awaitReady();
    return c;
  }

  /** One running capture process. */
  static final class Capture implements AutoCloseable {
    private final Process p;
    private final BufferedReader out;
    private final CompletableFuture<String> err;

    Capture(Process p) {
      this.p = p;
      this.out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
      this.err = Proc.drain(p.getErrorStream());
    }

    void awaitReady() {
      CompletableFuture<String> l = CompletableFuture.supplyAsync(() -> {
        try {
          return out.readLine();
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      });
      try {
        String line = l.get(15, TimeUnit.SECONDS);
        if (!"READY".equals(line)) {
          close();
          throw new IllegalStateException("capture did not start: " + line + " " + err.getNow(""));
        }
      } catch (InterruptedException | ExecutionException | TimeoutException e) {
        close();
        throw new IllegalStateException("capture did not start: " + e, e);
      }
    }

    /** Waits until the capture ended by itself; returns the FRAME hex strings and the status. */
    Result await() {
      CompletableFuture<String> rest = CompletableFuture.supplyAsync(() -> {
        StringBuilder b = new StringBuilder();
        try {
          for (String l; (l = out.readLine()) != null; ) {
            b.append(l).append('\n');
          }
        } catch (IOException e) {
          // process killed; what we have is what we report
        }
        return b.toString();
      });
      try {
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
          close();
          throw new IllegalStateException("capture did not finish");
        }
        List<String> lines = rest.get().lines().toList();
        String status = lines.isEmpty() ? "(nothing)" : lines.get(lines.size() - 1);
        List<String> frames = lines.stream().filter(s -> s.startsWith("FRAME "))
            .map(s -> s.substring(6)).toList();
        return new Result(frames, status, err.get());
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        close();
        throw new IllegalStateException(e);
      } catch (ExecutionException e) {
        throw new IllegalStateException(e);
      }
    }

    record Result(List<String> frames, String status, String stderr) {}

    @Override
    public void close() {
      if (p.isAlive()) {
        p.descendants().forEach(ProcessHandle::destroyForcibly);
        p.destroyForcibly();
      }
    }
  }

  @Override
  public void close() {
    try {
      in.close();
    } catch (IOException e) {
      // already gone
    }
    try {
      if (!server.waitFor(5, TimeUnit.SECONDS)) {
        server.destroyForcibly();
        server.waitFor(5, TimeUnit.SECONDS);
      }
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      server.destroyForcibly();
    }
  }
}
