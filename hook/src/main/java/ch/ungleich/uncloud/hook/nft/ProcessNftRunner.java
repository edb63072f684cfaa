package ch.ungleich.uncloud.hook.nft;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs the nft binary. The hook must never hang libvirt, so every call has a deadline. */
public final class ProcessNftRunner implements NftRunner {
  private static final long TIMEOUT_SECONDS = 20;
  private final String nft;

  public ProcessNftRunner(String nft) {
    this.nft = nft;
  }

  @Override
  public void apply(String script) {
    exec(script, "-f", "-");
  }

  @Override
  public String run(String... args) {
    return exec(null, args);
  }

  /**
   * {@code unshare --net}: a fresh network namespace that vanishes with the process, so the script
   * is applied where nothing can see it, then listed.
   */
  @Override
  public String canonical(String script) {
    List<String> cmd =
        List.of(
            "unshare", "--net", "--", "/bin/sh", "-c",
            "\"$0\" -f - && \"$0\" -j list table " + NftScript.FAMILY + " " + NftScript.TABLE, nft);
    return exec(cmd, script);
  }

  @Override
  public String canonicalInbound(String script) {
    String list = "\"$0\" -j -p list table %s " + InboundScript.TABLE;
    List<String> cmd =
        List.of(
            "unshare", "--net", "--", "/bin/sh", "-c",
            "\"$0\" -f - && " + String.format(list, "bridge") + " && echo && " + String.format(list, "inet"), nft);
    return exec(cmd, script);
  }

  @Override
  public java.util.Optional<String> generation() {
    String boot;
    try {
      boot = java.nio.file.Files.readString(java.nio.file.Path.of("/proc/sys/kernel/random/boot_id"));
    } catch (IOException | RuntimeException e) {
      return java.util.Optional.empty();
    }
    return NftGeneration.current(boot);
  }

  /** The nft binary (found on PATH as exec would) and the jar or class directory this runs from: path, size, mtime. */
  @Override
  public String identity() {
    java.nio.file.Path bin = null;
    if (nft.contains("/")) {
      bin = java.nio.file.Path.of(nft);
    } else {
      for (String d : System.getenv().getOrDefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
        java.nio.file.Path c = java.nio.file.Path.of(d.isEmpty() ? "." : d, nft);
        if (java.nio.file.Files.isExecutable(c)) {
          bin = c;
          break;
        }
      }
    }
    String code;
    try {
      code = describe(java.nio.file.Path.of(ProcessNftRunner.class.getProtectionDomain().getCodeSource().getLocation().toURI()));
    } catch (java.net.URISyntaxException | RuntimeException e) {
      code = "unknown " + System.nanoTime(); // never matches: no fingerprint can be trusted
    }
    return "nft " + (bin == null ? nft + " not found" : describe(bin)) + "; code " + code;
  }

  private static String describe(java.nio.file.Path p) {
    try {
      java.nio.file.Path r = p.toRealPath();
      return r + " " + java.nio.file.Files.size(r) + " " + java.nio.file.Files.getLastModifiedTime(r).toMillis();
    } catch (IOException e) {
      return p + " unreadable";
    }
  }

  private String exec(String stdin, String... args) {
    List<String> cmd = new ArrayList<>();
    cmd.add(nft);
    cmd.addAll(List.of(args));
    return exec(cmd, stdin);
  }

  private String exec(List<String> cmd, String stdin) {
    Process p;
    try {
      p = new ProcessBuilder(cmd).start();
    } catch (IOException e) {
      throw new UncloudException(ExitCodes.APPLY_FAILED, "cannot run " + cmd.get(0) + ": " + e.getMessage());
    }
    try {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      ByteArrayOutputStream err = new ByteArrayOutputStream();
      Thread o = pump(p.getInputStream(), out);
      Thread e = pump(p.getErrorStream(), err);
      try (OutputStream in = p.getOutputStream()) {
        if (stdin != null) {
          in.write(stdin.getBytes(StandardCharsets.UTF_8));
        }
      }
      if (!p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        throw new UncloudException(
            ExitCodes.APPLY_FAILED, nft + " did not finish within " + TIMEOUT_SECONDS + " s");
      }
      o.join();
      e.join();
      if (p.exitValue() != 0) {
        throw new UncloudException(ExitCodes.APPLY_FAILED, "nft failed: " + oneLine(err.toString(StandardCharsets.UTF_8)));
      }
      return out.toString(StandardCharsets.UTF_8);
    } catch (IOException e) {
      p.destroyForcibly();
      throw new UncloudException(ExitCodes.APPLY_FAILED, "talking to " + nft + ": " + e.getMessage());
    } catch (InterruptedException e) {
      p.destroyForcibly();
      Thread.currentThread().interrupt();
      throw new UncloudException(ExitCodes.APPLY_FAILED, "interrupted while running " + nft);
    }
  }

  /** nft prints an error, the offending line and a caret line; keep the error and the statement. */
  static String oneLine(String stderr) {
    String[] lines = stderr.strip().split("\n");
    StringBuilder b = new StringBuilder();
    for (int i = 0; i < lines.length; i++) {
      String l = lines[i].strip();
      if (l.isEmpty() || l.matches("[\\s^~]+")) {
        continue;
      }
      if (b.length() > 0) {
        b.append(" | ");
      }
      b.append(l.replaceFirst("^/dev/stdin:", "line "));
      if (b.length() > 400) {
        break;
      }
    }
    return b.length() == 0 ? "exit status non-zero, no message" : b.toString();
  }

  /** Copies a child's output on a daemon thread, so a full pipe can never block the child. */
  public static Thread pump(InputStream in, ByteArrayOutputStream to) {
    Thread t =
        new Thread(
            () -> {
              try (in) {
                in.transferTo(to);
              } catch (IOException ignored) {
                // the process is gone; what we have is what there is
              }
            });
    t.setDaemon(true);
    t.start();
    return t;
  }
}
