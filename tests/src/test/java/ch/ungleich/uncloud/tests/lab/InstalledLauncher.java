package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The hook launcher exactly as {@code install/} installs it ({@code install/files/libvirt-hook}: JVM
 * flags, reconnect batching, exit codes), with the lab's paths instead of {@code /usr/lib/uncloud-hook}:
 * an absolute java, the built jar, a CDS archive path (absent: {@code -Xshare:auto} then starts without
 * one, silently), and the lab's config and reconnect spool set at the top.
 */
public final class InstalledLauncher {
  private InstalledLauncher() {}

  /** The launcher text; {@code dir} holds the (absent) CDS archive and the reconnect spool. */
  public static String render(Path java, Path jar, Path config, Path dir) {
    Path file = file();
    String text = text(file);
    String[] replace = {
      "/usr/lib/uncloud-hook/java ", sh(java.toAbsolutePath().toString()) + " ",
      "-XX:SharedArchiveFile=/var/lib/uncloud-hook/uncloud-hook.jsa",
      sh("-XX:SharedArchiveFile=" + dir.resolve("no-cds-archive.jsa").toAbsolutePath()),
      "/usr/lib/uncloud-hook/uncloud-hook.jar", sh(jar.toAbsolutePath().toString()),
    };
    for (int i = 0; i < replace.length; i += 2) {
      if (!text.contains(replace[i])) {
        throw new IllegalStateException(file + " no longer contains " + replace[i] + ": update " + InstalledLauncher.class);
      }
      text = text.replace(replace[i], replace[i + 1]);
    }
    int body = text.indexOf('\n') + 1;
    return text.substring(0, body)
        + "UNCLOUD_HOOK_CONFIG=" + sh(config.toAbsolutePath().toString()) + "\nexport UNCLOUD_HOOK_CONFIG\n"
        + "UNCLOUD_HOOK_SPOOL=" + sh(dir.resolve("reconnect-spool").toAbsolutePath().toString())
        + "\nexport UNCLOUD_HOOK_SPOOL\n"
        + text.substring(body);
  }

  /**
   * The launcher's JVM flags (between {@code java} and {@code -jar} on its one java line) without the
   * CDS archive, which only the installer builds. Among them: no hsperfdata file and every JVM message
   * on stderr, never on the hook's stdout (libvirt reads that as domain XML). Tests that run the jar
   * as the hook use these, so they see what libvirt sees.
   */
  public static List<String> jvmFlags() {
    Path file = file();
    Matcher m = Pattern.compile("exec /usr/lib/uncloud-hook/java (.*?) -jar ").matcher(text(file));
    if (!m.find()) {
      throw new IllegalStateException(file + " has no 'exec /usr/lib/uncloud-hook/java ... -jar' line: update " + InstalledLauncher.class);
    }
    return Arrays.stream(m.group(1).split(" +")).filter(f -> !f.startsWith("-XX:SharedArchiveFile=")).toList();
  }

  private static Path file() {
    return Path.of(System.getProperty("uncloud.root", ".."), "install", "files", "libvirt-hook");
  }

  private static String text(Path file) {
    try {
      return Files.readString(file);
    } catch (IOException e) {
      throw new UncheckedIOException("the installed launcher " + file, e);
    }
  }

  /** {@link #render} with the java running the tests. */
  public static String render(Path jar, Path config, Path dir) {
    return render(Path.of(System.getProperty("java.home"), "bin", "java"), jar, config, dir);
  }

  private static String sh(String s) {
    return "'" + s.replace("'", "'\\''") + "'";
  }
}
