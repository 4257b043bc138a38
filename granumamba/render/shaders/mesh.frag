#version 330 core
// The built-in body's fragment shader: pyrender's metallic-roughness BRDF (Cook-Torrance with
// Schlick Fresnel, Smith-Schlick occlusion and GGX distribution, the same terms and constants as
// pyrender's mesh.frag) for up to two directional lights and ambient light, without the point-
// and spot-light loops, textures and shadow maps that this scene never uses. On a software
// rasteriser those unused paths cost more than half of every frame.
#define PI 3.141592653589793
#define MIN_ROUGHNESS 0.04
#define MAX_LIGHTS 2

struct DirectionalLight {
    vec3 color;
    float intensity;
    vec3 direction;
};
struct Material {
    vec3 emissive_factor;
    vec4 base_color_factor;
    float metallic_factor;
    float roughness_factor;
};

uniform Material material;
uniform DirectionalLight directional_lights[MAX_LIGHTS];
uniform int n_directional_lights;
uniform vec3 ambient_light;
uniform vec3 cam_pos;

in vec3 frag_position;
in vec3 frag_normal;
in vec4 frag_color;
out vec4 out_color;

void main()
{
    float roughness = clamp(material.roughness_factor, MIN_ROUGHNESS, 1.0);
    float metallic = clamp(material.metallic_factor, 0.0, 1.0);
    float alpha = roughness * roughness;
    vec4 base = material.base_color_factor;
    vec3 c_diff = mix(vec3(0.0), base.rgb * (1.0 - MIN_ROUGHNESS), 1.0 - metallic);
    vec3 f0 = mix(vec3(MIN_ROUGHNESS), base.rgb, metallic);
    vec3 n = normalize(frag_normal);
    vec3 v = normalize(cam_pos - frag_position);
    float nv = clamp(abs(dot(n, v)), 0.001, 1.0);
    float k = (roughness + 1.0) * (roughness + 1.0) / 8.0;
    float a2 = alpha * alpha;
    vec3 color = vec3(0.0);
    for (int i = 0; i < MAX_LIGHTS; i++) {
        if (i >= n_directional_lights) break;
        vec3 l = normalize(-directional_lights[i].direction);
        vec3 h = normalize(l + v);
        float nl = clamp(dot(n, l), 0.001, 1.0);
        float nh = clamp(dot(n, h), 0.0, 1.0);
        float vh = clamp(dot(v, h), 0.0, 1.0);
        vec3 F = f0 + (1.0 - f0) * pow(clamp(1.0 - vh, 0.0, 1.0), 5.0);
        float G = (nv / (nv * (1.0 - k) + k)) * (nl / (nl * (1.0 - k) + k));
        float denom = nh * nh * (a2 - 1.0) + 1.0;
        float D = a2 / (PI * denom * denom);
        vec3 radiance = directional_lights[i].intensity * directional_lights[i].color;
        color += nl * radiance * ((1.0 - F) * c_diff / PI + F * G * D / (4.0 * nl * nv + 0.001));
    }
    color += base.rgb * ambient_light + material.emissive_factor;
    color *= frag_color.rgb;
    out_color = clamp(vec4(pow(color, vec3(1.0 / 2.2)), base.a * frag_color.a), 0.0, 1.0);
}
