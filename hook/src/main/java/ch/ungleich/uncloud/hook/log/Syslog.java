package ch.ungleich.uncloud.hook.log;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The system log ({@code /dev/log}: journald or rsyslog), identifier {@code uncloud-hook}, facility
 * {@code daemon}. Java 17 has no AF_UNIX datagram socket and JNA costs ~190 ms per hook call
 * (native library extraction and class set-up; docs/hook-calls.md#logs), so the lines go to one
 * {@code logger(1)} per process, started at the first line and fed on stdin with a priority prefix per
 * line. {@link #close} ends logger's stdin and waits for it (a few ms): a JVM exiting while its process
 * reaper still waits for a child stalls 300 ms or more in HotSpot's exit (threads in native). No socket,
 * no logger, or a broken pipe: the lines go to the file only, silently. logger's own stdout and stderr
 * are discarded, never libvirt's.
 */
public final class Syslog {
  public static final int ERR = 3;
  public static final int WARNING = 4;
  public static final int INFO = 6;
  private static final int DAEMON = 3;

  private final Path socket;
  private Process logger;
  private OutputStream pipe;
  private boolean off;

  public Syslog(Path socket) {
    this.socket = socket;
  }

  /** Where libc's syslog(3) writes. */
  public static Syslog devLog() {
    return new Syslog(Path.of("/dev/log"));
  }

  /** {@code logger}'s command line; its {@code --id} is this process, so the journal shows the hook's PID. */
  List<String> command() {
    return List.of("logger", "--id=" + ProcessHandle.current().pid(), "-t", "uncloud-hook", "-u", socket.toString(),
        "--prio-prefix", "--socket-errors=off", "-S", "8192");
  }

  /** One stdin line for {@code logger --prio-prefix}: {@code <facility*8+severity>text}, on one line. */
  static String frame(int severity, String line) {
    return "<" + (DAEMON * 8 + severity) + ">" + line.replace('\n', ' ').replace('\r', ' ') + "\n";
  }

  public void send(int severity, String line) {
    if (off) {
      return;
    }
    try {
      if (pipe == null) {
        if (!Files.exists(socket)) {
          off = true;
          return;
        }
        logger = new ProcessBuilder(command())
            .redirectOutput(ProcessBuilder.Redirect.DISCARD)
            .redirectError(ProcessBuilder.Redirect.DISCARD)
            .start();
        pipe = logger.getOutputStream();
      }
      pipe.write(frame(severity, line).getBytes(StandardCharsets.UTF_8));
      pipe.flush();
    } catch (IOException | RuntimeException e) {
      off = true; // the file still has the line
    }
  }

  /** Ends logger's input and gives it one second to send the rest and exit (it needs a few ms). */
  public void close() {
    off = true;
    if (logger == null) {
      return;
    }
    try {
      pipe.close();
      if (!logger.waitFor(1, TimeUnit.SECONDS)) {
        logger.destroy();
      }
    } catch (IOException e) {
      logger.destroy();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    logger = null;
  }
}
