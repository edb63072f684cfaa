package ch.ungleich.uncloud.tests.lab;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;

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
    Path file = Path.of(System.getProperty("uncloud.root", ".."), "install", "files", "libvirt-hook");
    String text;
    try {
      text = Files.readString(file);
    } catch (IOException e) {
      throw new UncheckedIOException("the installed launcher " + file, e);
    }
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

  /** {@link #render} with the java running the tests. */
  public static String render(Path jar, Path config, Path dir) {
    return render(Path.of(System.getProperty("java.home"), "bin", "java"), jar, config, dir);
  }

  private static String sh(String s) {
    return "'" + s.replace("'", "'\\''") + "'";
  }
}
