package ch.ungleich.uncloud.hook;

import ch.ungleich.uncloud.hook.cli.Cli;
import ch.ungleich.uncloud.hook.invocation.CdsTraining;
import ch.ungleich.uncloud.hook.invocation.HookBatch;
import ch.ungleich.uncloud.hook.invocation.HookMain;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Entry point. {@code uncloud-hook hook DOMAIN OP SUBOP EXTRA} is libvirt's call and takes a fast path
 * without picocli; every other command goes through the picocli CLI.
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) {
    if (args.length > 0 && args[0].equals("hook") && !(args.length > 1 && args[1].startsWith("-"))) {
      // libvirt owns the hook's stdout (domain XML for migrate/restore): nothing else may reach it,
      // so System.out points at stderr for the whole call and only HookMain gets the real stdout.
      PrintStream err = new PrintStream(new FileOutputStream(FileDescriptor.err), true);
      PrintStream out = new PrintStream(new FileOutputStream(FileDescriptor.out), false, StandardCharsets.UTF_8);
      System.setOut(err);
      System.exit(HookMain.main(Arrays.copyOfRange(args, 1, args.length), System.in, out, err));
    }
    if (args.length > 0 && args[0].equals("hook-batch")) {
      // the launcher's reconnect batching (install/files/libvirt-hook): same fast path
      PrintStream err = new PrintStream(new FileOutputStream(FileDescriptor.err), true);
      System.setOut(err);
      System.exit(HookBatch.main(Arrays.copyOfRange(args, 1, args.length), err));
    }
    if (args.length > 0 && args[0].equals("cds-training")) {
      // install/files/setup's training run for the CDS archive: the hook's fast path, both sources
      PrintStream err = new PrintStream(new FileOutputStream(FileDescriptor.err), true);
      System.setOut(err);
      System.exit(CdsTraining.main(Arrays.copyOfRange(args, 1, args.length), err));
    }
    System.exit(Cli.run(args, System.out, System.err));
  }
}
