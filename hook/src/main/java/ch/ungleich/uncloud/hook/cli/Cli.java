package ch.ungleich.uncloud.hook.cli;

import ch.ungleich.uncloud.hook.ExitCodes;
import ch.ungleich.uncloud.hook.UncloudException;
import java.io.PrintStream;
import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The operator CLI: one picocli class per command; failures become one stderr line and an exit code. */
@Command(
    name = "uncloud-hook",
    mixinStandardHelpOptions = true,
    versionProvider = Cli.Version.class,
    description = "Pins every libvirt VM NIC to its own MAC and IPs (nftables or nwfilter).",
    subcommands = {
      HookCommand.class,
      DoctorCommand.class,
      StatusCommand.class,
      PlanCommand.class,
      ReconcileCommand.class,
      MetadataCommand.class,
      NwfilterCommand.class,
      SyncCommand.class,
      EtcdCommand.class,
      DemoCommand.class,
      CommandLine.HelpCommand.class
    })
public final class Cli {

  /** Runs the CLI; returns the exit code. */
  public static int run(String[] args, PrintStream out, PrintStream err) {
    CommandLine cl = new CommandLine(new Cli());
    cl.setOut(new PrintWriter(out, true));
    cl.setErr(new PrintWriter(err, true));
    cl.setExitCodeExceptionMapper(
        e -> e instanceof UncloudException u ? u.exitCode()
            : e instanceof CommandLine.ParameterException ? ExitCodes.USAGE
            : ExitCodes.APPLY_FAILED);
    cl.setExecutionExceptionHandler(
        (e, cmd, parsed) -> {
          boolean debug = false;
          for (CommandLine.ParseResult p = parsed; p != null; p = p.subcommand()) {
            debug |= p.hasMatchedOption("--debug");
          }
          if (debug) {
            e.printStackTrace(cmd.getErr());
          }
          cmd.getErr().println("uncloud-hook: " + (e instanceof UncloudException ? e.getMessage() : e.toString()));
          return cmd.getExitCodeExceptionMapper().getExitCode(e);
        });
    return cl.execute(args);
  }

  /** The version from the jar manifest. */
  static final class Version implements CommandLine.IVersionProvider {
    @Override
    public String[] getVersion() {
      String v = Cli.class.getPackage().getImplementationVersion();
      return new String[] {"uncloud-hook " + (v == null ? "(development build)" : v)};
    }
  }
}
