/* The Clustergate-2 example's payload: reads its input from the volume at /data and a file of
 * its own folder baked into the image, and writes its result to the volume. Build it on the
 * ground, statically linked:
 *
 *     gcc -static -O2 -o namespace/my-app/bin/app my-app.c
 *
 * /data/out/result.txt: "<greeting>|<$GREETING>|len=<input bytes>", a newline, then the input
 * reversed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int main(void) {
    static char buf[1 << 20];
    char greeting[256] = "";
    FILE *g = fopen("/my-app/etc/greeting.txt", "rb");
    if (!g) {
        perror("/my-app/etc/greeting.txt");
        return 4;
    }
    size_t gn = fread(greeting, 1, sizeof greeting - 1, g);
    greeting[gn] = '\0';
    greeting[strcspn(greeting, "\n")] = '\0';
    fclose(g);
    FILE *in = fopen("/data/in/input.txt", "rb");
    if (!in) {
        perror("/data/in/input.txt");
        return 2;
    }
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    mkdir("/data/out", 0755);
    FILE *out = fopen("/data/out/result.txt", "wb");
    if (!out) {
        perror("/data/out/result.txt");
        return 3;
    }
    const char *env = getenv("GREETING");
    fprintf(out, "%s|%s|len=%zu\n", greeting, env ? env : "-", n);
    for (size_t i = 0; i < n; i++) fputc(buf[n - 1 - i], out);
    fclose(out);
    puts("wrote /data/out/result.txt");
    return 0;
}
