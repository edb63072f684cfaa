package ch.ungleich.uncloud.hook.log;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.OffsetDateTime;
import java.time.format.DateTimeFormatter;

/**
 * The hook's log: every line to stderr (libvirt shows it when the hook fails) and, with a timestamp,
 * appended to {@code log_file} (libvirt drops a successful hook's stderr, and {@code reconnect} must log
 * and succeed), and to the system log ({@link Syslog}: {@code journalctl -t uncloud-hook}) with the
 * priority of its level. Never stdout: that belongs to libvirt.
 */
public final class Log {
  private final PrintStream err;
  private final Syslog syslog;
  private final long started = System.nanoTime();
  private String file;

  public Log(PrintStream err) {
    this(err, Syslog.devLog());
  }

  public Log(PrintStream err, Syslog syslog) {
    this.err = err;
    this.syslog = syslog;
  }

  /** Milliseconds since this log was made (for a hook call: since its start), for "took N ms". */
  public long elapsedMs() {
    return (System.nanoTime() - started) / 1_000_000;
  }

  public void toFile(String path) {
    this.file = path == null || path.isEmpty() ? null : path;
  }

  /** A line for the file only: routine events that libvirt should not show anyone. */
  public void info(String line) {
    append("info", Syslog.INFO, line);
  }

  /** A line for stderr and the file. */
  public void error(String line) {
    err.println("uncloud-hook: " + line);
    err.flush();
    append("error", Syslog.ERR, line);
  }

  public void warn(String line) {
    err.println("uncloud-hook: warning: " + line);
    err.flush();
    append("warning", Syslog.WARNING, line);
  }

  /** Hands the last lines to the system log; the log takes no more lines after this. */
  public void close() {
    syslog.close();
  }

  private void append(String level, int severity, String line) {
    syslog.send(severity, line);
    if (file == null) {
      return;
    }
    String text =
        OffsetDateTime.now().format(DateTimeFormatter.ISO_OFFSET_DATE_TIME) + " " + level + " " + line + "\n";
    try {
      Files.writeString(
          Path.of(file), text, StandardCharsets.UTF_8, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    } catch (IOException | RuntimeException e) {
      // a log that cannot be written must not change what libvirt sees; say so once on stderr
      err.println("uncloud-hook: warning: cannot write " + file + ": " + e.getMessage());
      file = null;
    }
  }
}
